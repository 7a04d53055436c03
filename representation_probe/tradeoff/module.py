"""TradeoffModule: loss = w * MSE(D(z), x~) + (1 - w) * CE(C(z), y) on one shared latent z = E(x~)."""

from __future__ import annotations

from functools import partial

import lightning as L
import torch
import torch.nn.functional as F

from representation_probe.metrics import psnr
from representation_probe.tradeoff.nets import TradeoffNet


def scale_gradient(z: torch.Tensor, factor: float) -> torch.Tensor:
    """z itself in the forward, `factor` times the incoming gradient in the backward.

    detached + factor * (z - detached): the bracket is exactly 0 in value and has derivative 1 in z.
    """
    detached = z.detach()
    return detached + factor * (z - detached)


class TradeoffModule(L.LightningModule):
    """Rathjens & Wiskott's routing: the encoder learns from w dMSE + (1 - w) dCE, the decoder from MSE
    alone and the classifier from CE alone, so both heads always measure what z holds and w shapes z only.

    One backward of MSE(D(z_d), x~) + CE(C(z_c), y), where z_d and z_c are z with the gradient scaled by w
    and 1 - w: each head's parameters see their own loss unscaled, the encoder the mix. (The original gets
    this from three backward passes and three optimisers; one Adam with a group per part is the same as
    three Adams, as Adam keeps its state per parameter.)

    Images come in [0, 1] and become x~ = 2x - 1 in [-1, 1], the range of the decoder's tanh; the reported
    MSE is on x~ as in the original, PSNR on [0, 1].
    """

    def __init__(self, net: TradeoffNet, weight: float, optimizer: partial):
        """`weight`: w in [0, 1] (1: reconstruction only shapes z; 0: classification only)."""
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer"])
        self.net, self.weight, self.optimizer_factory = net, weight, optimizer

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstructions in [0, 1] and logits."""
        z = self.net.encoder(images * 2 - 1)
        return (self.net.decoder(z) + 1) / 2, self.net.classifier(z)

    def scores(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The batch's mse, ce, loss (the weighted objective) and acc, and the reconstructions of x~."""
        target = images * 2 - 1
        z = self.net.encoder(target)
        reconstruction = self.net.decoder(scale_gradient(z, self.weight))
        logits = self.net.classifier(scale_gradient(z, 1 - self.weight))
        mse, ce = F.mse_loss(reconstruction, target), F.cross_entropy(logits, labels)
        accuracy = (logits.argmax(dim=1) == labels).float().mean()
        return dict(loss=self.weight * mse + (1 - self.weight) * ce, mse=mse, ce=ce, acc=accuracy), reconstruction

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        scores, _ = self.scores(images, labels)
        self._log("train", scores, len(images))
        return scores["mse"] + scores["ce"]  # the routed objective (class docstring), not scores["loss"]

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate("val", batch)

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate("test", batch)

    def _evaluate(self, stage: str, batch) -> None:
        images, labels = batch
        scores, reconstruction = self.scores(images, labels)
        scores["psnr"] = torch.tensor(psnr((reconstruction + 1) / 2, images)).mean()
        self._log(stage, scores, len(images))

    def _log(self, stage: str, scores: dict[str, torch.Tensor], batch_size: int) -> None:
        # Epoch values are means weighted by batch size: exact over the whole split, short last batch included.
        for name, value in scores.items():
            self.log(f"{stage}/{name}", value, batch_size=batch_size, on_epoch=True, on_step=False,
                     sync_dist=stage != "train", prog_bar=name in ("loss", "acc"))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        parts = (self.net.encoder, self.net.decoder, self.net.classifier)
        return self.optimizer_factory(params=[{"params": part.parameters()} for part in parts])
