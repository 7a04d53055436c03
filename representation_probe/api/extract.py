"""`rp.extract`: the outputs of some layers for some images, from one forward per batch."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader, Dataset

from representation_probe.api.images import as_images, call_size
from representation_probe.api.results import Result
from representation_probe.api.runtime import as_model, public
from representation_probe.data.targets import resized
from representation_probe.errors import ConfigError, InputWarning, warn
from representation_probe.models import FeatureExtractor, pool as pooled, prefix_tokens
from representation_probe.models.layers import layer_table, select_layers


@dataclass(repr=False)  # Result's short repr
class Features(Result):
    """layer -> (N, ...) outputs (pooled to (N, D) if asked), images in order, and their `labels` when the data
    had them; a row per (layer, image) with the output's L2 norm, mean and standard deviation."""

    command = "extract"
    metrics = ("norm", "mean", "std")
    tensors = ("features", "labels")

    features: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    labels: torch.Tensor | None = field(default=None, repr=False)

    def __getitem__(self, layer: str) -> torch.Tensor:
        return self.features[layer]


@public
def layers(model):
    """Every layer of `model` (anything rp.load takes) as a DataFrame, probe points first: layer, alias (its paper
    name), output (what it reads of a container: `tensor`, `[0] of tuple(2)`), shape (one image's, at the
    model's size), relative_depth (probe points) and probe_point."""
    return layer_table(as_model(model))


@public
def extract(model, images, layers=None, *, pool: str | None = None, batch_size: int = 64) -> Features:
    """Every requested layer's output for every image, one truncated forward per batch.

    Args:
        model: anything rp.load takes, or a loaded model.
        images: what rp.invert takes (names, files, PIL images, tensors, a list or mapping), or data: a torch
            Dataset of (image, label, ...) items or a DataLoader of such batches (the labels are kept).
        layers: names, aliases, probe-point indices, relative depths or modules; None: the probe points.
        pool: None (as the layer gives them), or mean / flatten / cls: one vector per image.
    """
    backbone = as_model(model)
    if isinstance(images, (Dataset, DataLoader)):
        batches, size, names = _data(images, backbone, batch_size)
    else:
        size = call_size(backbone, images)
        targets = as_images(images, size, backbone.channels)
        names = list(targets)
        batches = ((batch, None) for batch in torch.stack(list(targets.values())).split(batch_size))
    layers = select_layers(backbone, layers) if layers is not None else list(backbone.probe_points)
    with backbone.frozen():  # a user's own module: frozen for the call, then as it was
        extractor = FeatureExtractor(backbone, layers, size)
        outputs: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
        labels = []
        with torch.no_grad():
            for batch, label in batches:
                for layer, out in extractor(batch).items():
                    outputs[layer].append(pooled(out, pool, prefix_tokens(backbone)) if pool else out)
                labels.append(label)
        features = {layer: torch.cat(parts) for layer, parts in outputs.items()}
    count = len(next(iter(features.values())))
    label = torch.cat(labels) if labels and all(part is not None for part in labels) else None
    names = names or [str(i) for i in range(count)]
    rows = [dict(command="extract", model=backbone.name, weights=backbone.weights, layer=layer,
                 relative_depth=backbone.depth_of(layer), image=name, shape=list(values.shape[1:]),
                 **({"label": int(label[i])} if label is not None and label.ndim == 1 else {}),
                 norm=float(values[i].norm()), mean=float(values[i].mean()), std=float(values[i].std()))
            for layer, values in features.items() for i, name in enumerate(names)]
    return Features(rows=rows, config=dict(model=backbone.name, layers=layers, pool=pool), features=features,
                    labels=label)


def _data(data, backbone, batch_size: int):
    """(batches of (images, labels or None), the size, no names) of a Dataset or DataLoader; at the model's
    pinned size, resized batch by batch (said once), else at the data's own."""
    loader = data if isinstance(data, DataLoader) else DataLoader(data, batch_size=batch_size)
    first = _images(next(iter(loader)))[0]
    size = backbone.pinned_size or tuple(first.shape[-2:])
    if tuple(first.shape[-2:]) != size:
        warn(f"the data's images are resized to {size[0]}x{size[1]}, the model's image_size (they are "
             f"{first.shape[-2]}x{first.shape[-1]})", InputWarning)

    def batches():
        for batch in loader:
            images, labels = _images(batch)
            yield (images if tuple(images.shape[-2:]) == size else resized(images, size)), labels

    return batches(), size, None


def _images(batch) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A batch's images (N, C, H, W) and labels (if any) from a tensor or an (images, labels, ...) sequence."""
    images, labels = (batch, None) if isinstance(batch, torch.Tensor) else (batch[0], batch[1] if len(batch) > 1
                                                                              else None)
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ConfigError(f"the data's batches hold images as (N, C, H, W) tensors, got {type(images).__name__}"
                          f"{tuple(getattr(images, 'shape', ()))}")
    return images.float(), torch.as_tensor(labels) if labels is not None else None
