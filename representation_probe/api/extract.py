"""`rp.extract`: the outputs of some layers for some images, from one forward per batch."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader, Dataset

from representation_probe.api.images import as_images, size_of
from representation_probe.api.results import Result
from representation_probe.api.runtime import as_model, returns_memory
from representation_probe.models import FeatureExtractor, pool as pooled, prefix_tokens
from representation_probe.models.layers import select_layers
from representation_probe.runs.rundir import RunDir, write_atomic


@dataclass
class Features(Result):
    """layer -> (N, ...) outputs (pooled to (N, D) if asked), images in order; a row per (layer, image)
    with the output's L2 norm, mean and standard deviation."""

    command = "extract"
    metrics = ("norm", "mean", "std")

    features: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def __getitem__(self, layer: str) -> torch.Tensor:
        return self.features[layer]

    def _write(self, run_dir: RunDir) -> None:
        import io

        buffer = io.BytesIO()
        torch.save(self.features, buffer)
        write_atomic(run_dir.path / "features.pt", buffer.getvalue())


@returns_memory
def extract(model, images, layers=None, *, pool: str | None = None, batch_size: int = 64) -> Features:
    """Every requested layer's output for every image, one truncated forward per batch.

    Args:
        model: anything rp.load takes, or a loaded model.
        images: what rp.invert takes (names, files, PIL images, tensors, a list or mapping), or a torch
            Dataset of (image, label) pairs.
        layers: names, aliases, probe-point indices, relative depths or modules; None: the probe points.
        pool: None (as the layer gives them), or mean / flatten / cls: one vector per image.
    """
    backbone = as_model(model, size_of(images) if not isinstance(images, Dataset) else None)
    layers = select_layers(backbone, layers) if layers is not None else list(backbone.probe_points)
    with backbone.frozen():  # a user's own module: frozen for the call, then as it was
        extractor = FeatureExtractor(backbone, layers)
        if isinstance(images, Dataset):
            names, batches = None, (batch for batch, *_ in DataLoader(images, batch_size=batch_size))
        else:
            targets = as_images(images, backbone.image_size)
            names, stacked = list(targets), torch.stack(list(targets.values()))
            batches = stacked.split(batch_size)
        outputs: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
        with torch.no_grad():
            for batch in batches:
                for layer, out in extractor(batch).items():
                    outputs[layer].append(pooled(out, pool, prefix_tokens(backbone)) if pool else out)
        features = {layer: torch.cat(parts) for layer, parts in outputs.items()}
    count = len(next(iter(features.values())))
    names = names or [str(i) for i in range(count)]
    rows = [dict(command="extract", model=backbone.name, weights=backbone.weights, layer=layer,
                 relative_depth=backbone.depth_of(layer), image=name, shape=list(values.shape[1:]),
                 norm=float(values[i].norm()), mean=float(values[i].mean()), std=float(values[i].std()))
            for layer, values in features.items() for i, name in enumerate(names)]
    return Features(rows=rows, config=dict(model=backbone.name, layers=layers, pool=pool), features=features)
