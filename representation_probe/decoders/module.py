"""DecoderModule: learned inverses of a frozen backbone's layers, all fed by one backbone forward."""

from __future__ import annotations

from functools import partial

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from representation_probe.decoders.networks import Decoder, to_grid
from representation_probe.errors import ConfigError
from representation_probe.models import FeatureExtractor, prefix_tokens

MODES = ("direct", "chained", "cross")


class DecoderModule(L.LightningModule):
    """One decoder per layer, layer l -> image with MSE in pixel space ([0, 1]): `direct`, and `cross`
    (the same decoders, later fed other layers' outputs). `chained` adds the modular inverses of
    inverse-DETR: stage k -> stage k-1 with MSE in embedding space (on the patch grid), the first stage
    -> image; composed down to the image to evaluate, beside the direct decoders.

    Batches are (images, labels), and the step runs the backbone, or (images, grid of each layer, labels)
    from `decoders.cache` (any float precision), and the step skips it.

    The frozen feature extractor stays outside the module tree: Lightning neither trains, counts nor
    checkpoints it, and DDP synchronises the decoders only.
    """

    def __init__(self, features: FeatureExtractor, optimizer: partial, mode: str = "direct", width: int = 64,
                 min_width: int = 16, depth: int = 1):
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"unknown decode.mode '{mode}'; allowed: {', '.join(MODES)}")
        object.__setattr__(self, "features", features)
        self.mode, self.optimizer_factory = mode, optimizer
        self.layers = list(features.nodes)  # input to output
        size, channels = features.size, features.backbone.channels
        with torch.no_grad():
            blank = torch.zeros(1, channels, *size)
            shapes = {layer: tuple(grid.shape[1:]) for layer, grid in self.grids(blank).items()}
        self.shapes = shapes
        options = dict(width=width, min_width=min_width, depth=depth)
        self.direct = nn.ModuleDict({_key(layer): Decoder(shapes[layer][0], shapes[layer][1:], channels, size,
                                                          **options) for layer in self.layers})
        self.stages = nn.ModuleDict()
        if mode == "chained":
            for previous, layer in zip(self.layers, self.layers[1:]):
                self.stages[_key(layer)] = Decoder(shapes[layer][0], shapes[layer][1:], shapes[previous][0],
                                                   shapes[previous][1:], image=False, **options)

    # ---- the frozen forward ----------------------------------------------------------------------
    @torch.no_grad()
    def grids(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every layer's output of one backbone forward, as a (B, C, h, w) grid."""
        prefix = prefix_tokens(self.features.backbone)
        return {layer: to_grid(out, prefix).float() for layer, out in self.features(images).items()}

    def inputs(self, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(images, layer -> grid) of a batch, from the backbone or, for a cached batch, as stored."""
        images, *rest = batch
        if len(rest) == 1:
            return images, self.grids(images)
        return images, {layer: grid.float() for layer, grid in zip(self.layers, rest[:-1])}

    def on_fit_start(self) -> None:
        self.features.to(self.device)

    # ---- training ------------------------------------------------------------------------------------
    def losses(self, images: torch.Tensor, grids: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """MSE of every decoder: 'direct/<layer>' against the image, 'stage/<layer>' against the previous
        layer's grid (`grids`: the images' grids if already at hand)."""
        grids = self.grids(images) if grids is None else grids
        losses = {f"direct/{layer}": F.mse_loss(self.direct[_key(layer)](grids[layer]), images)
                  for layer in self.layers}
        for previous, layer in zip(self.layers, self.layers[1:]):
            if _key(layer) in self.stages:
                losses[f"stage/{layer}"] = F.mse_loss(self.stages[_key(layer)](grids[layer]), grids[previous])
        return losses

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        losses = self.losses(*self.inputs(batch))
        loss = sum(losses.values())  # the decoders are independent: the sum trains each on its own loss
        self.log("train/loss", loss, prog_bar=True)
        if len(losses) > 1:  # each decoder's own curve where a run trains several (its one is train/loss)
            self.log_dict({f"train/{name}": value for name, value in losses.items()})
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        losses = self.losses(*self.inputs(batch))
        self.log("val/loss", sum(losses.values()), prog_bar=True, sync_dist=True)
        if len(losses) > 1:
            self.log_dict({f"val/{name}": value for name, value in losses.items()}, sync_dist=True)

    def configure_optimizers(self):
        return self.optimizer_factory(params=self.parameters())

    # ---- reconstructions ---------------------------------------------------------------------------
    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, chained: bool = False,
                    grids: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """layer -> reconstructed images: its direct decoder, or (chained) its stage inverses composed
        down to the first layer, then that layer's image decoder (`grids`: the images' grids if at hand)."""
        grids = self.grids(images) if grids is None else grids
        if not chained:
            return {layer: self.direct[_key(layer)](grids[layer]) for layer in self.layers}
        out = {}
        for i, layer in enumerate(self.layers):
            grid = grids[layer]
            for stage in reversed(self.layers[1 : i + 1]):
                grid = self.stages[_key(stage)](grid)
            out[layer] = self.direct[_key(self.layers[0])](grid)
        return out

    @torch.no_grad()
    def cross(self, images: torch.Tensor, grids: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """(decoder i, input layer j) -> summed squared error of decoder i fed layer j's output (NaN where
        the shapes differ): the inter-layer correlation of inverse-tvm."""
        grids = self.grids(images) if grids is None else grids
        errors = torch.full((len(self.layers), len(self.layers)), float("nan"))
        for i, decoder in enumerate(self.layers):
            for j, layer in enumerate(self.layers):
                if self.shapes[layer] == self.shapes[decoder]:
                    errors[i, j] = F.mse_loss(self.direct[_key(decoder)](grids[layer]), images, reduction="sum")
        return errors


def _key(layer: str) -> str:
    return layer.replace(".", "/")  # ModuleDict keys cannot hold dots
