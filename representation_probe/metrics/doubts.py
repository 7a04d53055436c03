"""When a measured value should not be trusted as it is: checks for the studies that train (train, decode, probe,
tradeoff: a collapsed run) and for inversion (a descent that did not move, a gradient the optimiser cannot
follow, a target that is constant or ~0, a descent that ran away). Each check returns the warnings it finds;
the study puts them in its rows (`warnings`, summary.json), and `say` issues each through Python's `warnings`
with the project's classes (errors.py), which the command line logs; the report and W&B show them too.
"""

from __future__ import annotations

import math

import torch

from representation_probe.errors import ResultWarning, warn

DEAD = 1e-6  # a unit whose value varies less than this over the test set is dead (a ReLU at 0) or constant
NEVER_FELL = 0.98  # a loss whose best value stays above this share of its first never left its start
NO_BETTER = 0.98  # a reconstruction error above this share of the mean image's is no better than it


STILL = 1e-3  # a distance that changed by less than this share of its start did not move
NAMED_BY = ("model", "layer", "image", "seed", "weight", "latent")  # what tells a row apart in a warning
KEYED = ("seed", "weight", "latent")  # said with their name: a number alone would not say what it is


def say(rows: list[dict], category: type[ResultWarning]) -> None:
    """Each row's warnings through Python's `warnings`, named by the row's study, model, layer, image, seed,
    weight or latent, attributed to the caller's line outside this package (a notebook cell, a script)."""
    for row in rows:
        name = " ".join([row.get("command", "run"), *(f"{key} {row[key]}" if key in KEYED else str(row[key])
                                                      for key in NAMED_BY if row.get(key) is not None)])
        for warning in row.get("warnings") or []:
            warn(f"{name}: {warning}", category)


# ---- inversion ----------------------------------------------------------------------------------------------
def did_not_move(what: str, start: float, end: float) -> list[str]:
    """A distance whose end is within STILL of its start."""
    if not (math.isfinite(start) and math.isfinite(end)) or abs(end - start) > STILL * abs(start):
        return []
    return [f"{what} did not move ({start:.3g} at step 0, {end:.3g} at the end): the inversion did not change "
            "the image's embedding"]


def ran_away(m_g_start: float, m_g: float, m_i: float, farthest: float) -> list[str]:
    """Signs that the descent ran away without overflowing (a too large inversion.lr, typically)."""
    found = []
    if math.isfinite(m_i) and m_i > farthest:
        found.append(f"a_g is farther from the target (m_i {m_i:.3g}) than any image with pixels in [0, 1] "
                     f"can be ({farthest:.3g}): is inversion.lr too large?")
    if math.isfinite(m_g) and m_g > m_g_start * (1 + STILL):
        found.append(f"m_g rose from {m_g_start:.3g} at step 0 to {m_g:.3g}: is inversion.lr too large?")
    return found


def no_step(largest_step: float, largest_pixel: float) -> list[str]:
    """The first update moved no pixel by more than float32's resolution at the image's values: the gradient is
    too small for the optimiser (below Adam's eps, or an SGD step too small to register)."""
    resolution = _resolution(largest_pixel)
    if not math.isfinite(largest_step) or largest_step > resolution:
        return []
    return [f"the first step moved no pixel by more than {resolution:.2g} (float32's resolution at the image's "
            f"values; the largest change was {largest_step:.2g}): the gradient is too small for the optimiser"]


def image_still(largest_change: float, largest_pixel: float) -> list[str]:
    """a_g is a_0: no pixel changed by more than float32's resolution over the whole descent."""
    resolution = _resolution(largest_pixel)
    if not math.isfinite(largest_change) or largest_change > resolution:
        return []
    return [f"a_g did not move: no pixel changed by more than {resolution:.2g} from a_0 (the largest change was "
            f"{largest_change:.2g})"]


def _resolution(largest_pixel: float) -> float:
    """The spacing of float32 numbers at an image's largest value (at 1 for images within [0, 1])."""
    return torch.finfo(torch.float32).eps * max(abs(largest_pixel), 1.0)


def constant_target(spread: float, largest: float, layer: str) -> list[str]:
    """The target embedding is constant (no spread over its values) or ~0: m_g, m_s cannot tell images apart."""
    if largest == 0 or spread == 0:
        return [f"the target embedding at {layer} is constant ({'every value 0' if largest == 0 else 'no spread'}): "
                "distances to it cannot tell images apart"]
    if largest < torch.finfo(torch.float32).tiny * 1e6:
        return [f"the target embedding at {layer} is ~0 (its largest value is {largest:.3g}): distances to it are "
                "near float32's smallest numbers"]
    return []


# ---- training -----------------------------------------------------------------------------------------------


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
