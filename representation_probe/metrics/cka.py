"""Linear CKA (Kornblith et al. 2019): biased, debiased (Song et al. 2012) and minibatch (Nguyen et al. 2021).

With column-centred X (n x d1) and Y (n x d2), K = X X^T and L = Y Y^T,
CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F).
HSIC's constant factors cancel in the ratio, so the functions here work with scaled HSICs: <HKH, HLH>
(biased) and <U(K), U(L)> = n (n - 3) HSIC_1 (unbiased), U the U-centring of Szekely & Rizzo (2014).
A layer whose self-HSIC is not positive (constant features; the unbiased estimator can also go
negative on very few inputs) has no defined CKA: its entries are NaN, never a division by zero.
All sums run in float64.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from representation_probe.errors import ConfigError

Array = torch.Tensor | np.ndarray


def as_matrix(x: Array, name: str = "x") -> torch.Tensor:
    """(n, ...) features, torch or numpy, as an (n, d) float64 tensor on their device."""
    t = torch.as_tensor(x)
    if t.ndim < 2:
        raise ConfigError(f"{name} must hold one row of features per input, (n, d); got shape {tuple(t.shape)}")
    return t.flatten(1).to(torch.float64)


def as_pair(x: Array, y: Array) -> tuple[torch.Tensor, torch.Tensor]:
    """Two feature matrices of the same inputs in the same order, float64, on x's device."""
    x, y = as_matrix(x, "x"), as_matrix(y, "y")
    if len(x) != len(y):
        raise ConfigError(f"x and y must describe the same inputs in the same order: x has {len(x)} rows, "
                          f"y has {len(y)}")
    return x, y.to(x.device)


def center_gram(gram: torch.Tensor, debiased: bool = False) -> torch.Tensor:
    """H K H (biased), or the U-centred Gram (debiased): the diagonal zeroed first (set to zero, not
    `K - diag(K)` broadcast over rows), then rows and columns centred with the unbiased weights."""
    n = gram.shape[-1]
    if not debiased:
        gram = gram - gram.mean(dim=-2, keepdim=True)
        return gram - gram.mean(dim=-1, keepdim=True)
    _check_unbiased(n)
    gram = gram.clone()
    gram.diagonal(dim1=-2, dim2=-1).zero_()
    total = gram.sum(dim=(-2, -1), keepdim=True) / ((n - 1) * (n - 2))
    gram = gram - gram.sum(dim=-1, keepdim=True) / (n - 2) - gram.sum(dim=-2, keepdim=True) / (n - 2) + total
    gram.diagonal(dim1=-2, dim2=-1).zero_()
    return gram


def hsic(gram_x: torch.Tensor, gram_y: torch.Tensor, debiased: bool = False) -> torch.Tensor:
    """HSIC of two Gram matrices. Biased: tr(K H L H) / (n - 1)^2. Unbiased (Song et al. 2012, eq. 5):
    with the diagonals of K and L zeroed (K~, L~),
    [tr(K~ L~) + (1^T K~ 1)(1^T L~ 1) / ((n - 1)(n - 2)) - 2 / (n - 2) 1^T K~ L~ 1] / (n (n - 3))."""
    n = gram_x.shape[-1]
    if not debiased:
        return (center_gram(gram_x) * center_gram(gram_y)).sum() / (n - 1) ** 2
    _check_unbiased(n)
    k, l = gram_x.clone(), gram_y.clone()
    k.fill_diagonal_(0)
    l.fill_diagonal_(0)
    ones = torch.ones(n, dtype=k.dtype, device=k.device)
    trace = (k * l.T).sum()
    return (trace + k.sum() * l.sum() / ((n - 1) * (n - 2)) - 2 / (n - 2) * (ones @ k @ l @ ones)) / (n * (n - 3))


def linear_cka(x: Array, y: Array, debiased: bool = False) -> float:
    """Linear CKA between two representations of the same n inputs (rows), in [0, 1] for the biased form.

    Args:
        x: (n, d1) features, torch or numpy (more dimensions are flattened).
        y: (n, d2) features of the same inputs in the same order.
        debiased: use the unbiased HSIC estimator (Song et al. 2012), as in Kornblith et al.'s notebook;
            it corrects the pull towards 1 of high-dimensional features on few inputs.

    Returns:
        CKA, or NaN when either representation is constant over the inputs.
    """
    x, y = as_pair(x, y)
    if debiased:
        _check_unbiased(len(x))
    if max(x.shape[1], y.shape[1]) < len(x):  # d < n: d1 x d2 products are cheaper than n x n Grams
        xy, xx, yy = (_feature_hsic(a, b, debiased) for a, b in ((x, y), (x, x), (y, y)))
        return float(_normalise(torch.stack([xx, xy, xy, yy]).view(2, 2))[0, 1])
    return float(cka_matrix([x, y], debiased)[0, 1])


def _feature_hsic(x: torch.Tensor, y: torch.Tensor, debiased: bool) -> torch.Tensor:
    """The scaled HSIC of linear kernels from the features (Kornblith et al.'s feature-space form)."""
    x, y = x - x.mean(dim=0), y - y.mean(dim=0)
    xty = (x.T @ y).square().sum()
    if not debiased:
        return xty
    n = len(x)
    sx, sy = x.square().sum(dim=1), y.square().sum(dim=1)
    return xty - n / (n - 2) * (sx @ sy) + sx.sum() * sy.sum() / ((n - 1) * (n - 2))


def cka_matrix(features: Sequence[Array], debiased: bool = False) -> torch.Tensor:
    """CKA between every pair of representations of the same inputs: one Gram matrix per
    representation, every pair from one product of the stacked centred Grams.

    Args:
        features: L matrices (n, d_l), e.g. every probe point of several models.
        debiased: the unbiased HSIC estimator.

    Returns:
        (L, L) float64 matrix, symmetric, 1 on the diagonal (NaN for constant representations).
    """
    accumulator = MinibatchCKA(debiased=debiased)
    accumulator.update(features)
    return accumulator.compute()


def gram(x: Array, name: str = "x") -> torch.Tensor:
    """X X^T of the column-centred features, as float64.

    Centring first changes neither H K H nor the U-centred Gram (both remove every row and column
    effect) and keeps the entries small, so features of less than float64 precision (a network's
    float32 outputs) are centred and multiplied in float32, at about twice float64's throughput on a
    CPU and without a float64 copy of the features (which cost six times the product itself), with CKA
    moving by ~1e-8; float64 features stay float64.
    """
    t = torch.as_tensor(x)
    if t.ndim < 2:
        raise ConfigError(f"{name} must hold one row of features per input, (n, d); got shape {tuple(t.shape)}")
    t = t.flatten(1)
    t = t if t.dtype == torch.float64 else t.to(torch.float32)
    centred = t - t.mean(dim=0)
    return (centred @ centred.T).to(torch.float64)


class MinibatchCKA:
    """CKA accumulated over minibatches (Nguyen et al. 2021): for N beyond memory.

    Each batch's Gram matrices are centred (U-centred when debiased) and their HSICs summed over
    batches; CKA is the ratio of the sums. Every representation must see the same inputs in each
    batch (the same pairing for all models), and every batch must have the same size. With all inputs
    as one batch it is the full estimator; the unbiased estimator converges to it as batches add up
    (the biased one carries a per-batch bias, hence `debiased=True` by default here).
    """

    def __init__(self, debiased: bool = True):
        self.debiased = debiased
        self.batch_size: int | None = None
        self.batches = 0
        self.sums: torch.Tensor | None = None

    def update(self, features: Sequence[Array]) -> None:
        """Add one batch: L matrices (b, d_l) of the same b inputs, in the same order for every call."""
        matrices = [torch.as_tensor(x) for x in features]
        size = len(matrices[0])
        if any(len(m) != size for m in matrices):
            raise ConfigError(f"every representation must hold the same inputs: rows {[len(m) for m in matrices]}")
        if self.batch_size is not None and size != self.batch_size:
            raise ConfigError(f"minibatch CKA needs a constant batch size: this batch has {size} inputs, "
                              f"the first had {self.batch_size}")
        if self.sums is not None and len(matrices) != len(self.sums):
            raise ConfigError(f"every batch must hold the same {len(self.sums)} representations, got {len(matrices)}")
        grams = torch.stack([center_gram(gram(m, f"features[{i}]"), self.debiased).flatten()
                             for i, m in enumerate(matrices)])
        sums = grams @ grams.T
        self.sums = sums if self.sums is None else self.sums + sums
        self.batch_size, self.batches = size, self.batches + 1

    def compute(self) -> torch.Tensor:
        """(L, L) CKA from the HSICs summed so far."""
        if self.sums is None:
            raise ConfigError("minibatch CKA has seen no batch")
        return _normalise(self.sums)


def _check_unbiased(n: int) -> None:
    if n < 4:
        raise ConfigError(f"the unbiased HSIC estimator needs at least 4 inputs, got {n}")


def _normalise(hsic_matrix: torch.Tensor) -> torch.Tensor:
    """HSIC(i, j) / sqrt(HSIC(i, i) HSIC(j, j)); NaN where a self-HSIC is not positive."""
    scale = hsic_matrix.diagonal().clone()
    scale[~(scale > 0)] = torch.nan  # also catches NaN
    return hsic_matrix / scale.sqrt().outer(scale.sqrt())
