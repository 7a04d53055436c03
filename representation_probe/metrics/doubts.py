"""Is a trained result degenerate? Checks for the studies that train (train, decode, probe, tradeoff), so a
run that collapsed does not carry a normal-looking number: each returns the warnings it finds, which the
study puts in its summary rows (`warnings`), its log, the report and W&B.
"""

from __future__ import annotations

import logging
import math

import torch

log = logging.getLogger(__name__)

DEAD = 1e-6  # a unit whose value varies less than this over the test set is dead (a ReLU at 0) or constant
NEVER_FELL = 0.98  # a loss whose best value stays above this share of its first never left its start
NO_BETTER = 0.98  # a reconstruction error above this share of the mean image's is no better than it


def log_warnings(rows: list[dict]) -> None:
    """Each row's warnings to the log, named by the row's layer, image, seed, weight or latent."""
    for row in rows:
        name = " ".join(f"{key} {row[key]}" for key in ("layer", "image", "seed", "weight", "latent") if key in row)
        for warning in row.get("warnings") or []:
            log.warning("%s: %s", name or row.get("command", "run"), warning)


def dead_units(z: torch.Tensor) -> list[int]:
    """Indices of the latent units (columns of z, a batch of flattened codes) that never vary."""
    z = z.flatten(1).float()
    return [int(i) for i in torch.nonzero(z.std(dim=0) < DEAD).flatten()]


def loss_never_fell(values: list[float], what: str = "the training loss") -> list[str]:
    """Its best value after the first record stays near the first (three records at least)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return [f"{what} is NaN or infinite throughout"] if values else []
    if len(finite) >= 3 and min(finite[1:]) > NEVER_FELL * finite[0]:
        return [f"{what} never left its starting value ({finite[0]:.4g}, at best {min(finite[1:]):.4g} after): "
                "the learning rate may be too high or too low"]
    return []


def at_chance(accuracy: float | None, classes: int, count: int, what: str = "accuracy") -> list[str]:
    """At or below chance, allowing three standard errors of `count` guesses."""
    if accuracy is None or classes < 2 or count < 1:
        return []
    chance = 1 / classes
    if accuracy <= chance + 3 * math.sqrt(chance * (1 - chance) / count):
        return [f"{what} {accuracy:.3g} is at chance (1/{classes} = {chance:.3g} over {count} images)"]
    return []


def psnr_no_better(psnr: float | None, mean_psnr: float | None, margin: float = 0.1) -> list[str]:
    """A held-out reconstruction whose PSNR does not beat the mean training image's by `margin` dB."""
    if psnr is None or mean_psnr is None or psnr > mean_psnr + margin:
        return []
    return [f"the held-out reconstruction ({psnr:.1f} dB) is no better than the mean image ({mean_psnr:.1f} dB)"]


def no_better_than_mean(mse: float | None, mean_mse: float | None, what: str = "the reconstruction") -> list[str]:
    if mse is None or mean_mse is None or not math.isfinite(mse) or mse <= NO_BETTER * mean_mse:
        return []
    return [f"{what} (MSE {mse:.4g}) is no better than the mean image (MSE {mean_mse:.4g})"]
