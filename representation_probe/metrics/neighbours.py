"""Neighbourhood similarity: mutual k-NN alignment (Huh et al. 2024) and Information Imbalance
(Glielmo et al. 2022). Both ask whether two representations put the same inputs near each other.

Distances are computed a block of rows at a time (memory: a block times n, never n x n), in float64,
and each representation's neighbours once, however many others it is compared with.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from representation_probe.errors import ConfigError
from representation_probe.metrics.cka import Array, as_matrix, as_pair

BLOCK_ELEMENTS = 2**23  # a block of distance rows: 64 MiB of float64
QUANTILE = 0.95  # platonic-rep's outlier clamp


def check_neighbours(k, n: int, name: str = "k") -> int:
    """k if it is an integer in 1..n-1 (an input is never its own neighbour), else one ConfigError line."""
    if n < 2:
        raise ConfigError(f"neighbours need at least 2 inputs, got {n}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k < n:
        raise ConfigError(f"{name} must be an integer from 1 to {n - 1} (fewer than the {n} inputs), got {k!r}")
    return k


def mutual_knn(x: Array, y: Array, k: int = 10) -> float:
    """Mutual k-NN alignment (Huh et al. 2024, minyoungg/platonic-rep, k = 10 in the paper).

    Each representation is clamped at q, the mean over rows of each row's 0.95 quantile of |x|, and
    its rows L2-normalised; the k nearest neighbours of each input by cosine similarity (itself
    excluded) are found in both; the score is the mean over inputs of |N_k^x(i) & N_k^y(i)| / k:
    1 for the same neighbourhoods, about k / (n - 1) for unrelated ones.

    Args:
        x: (n, d1) features, torch or numpy.
        y: (n, d2) features of the same inputs in the same order.
        k: neighbours per input, 1 <= k < n.
    """
    return float(mutual_knn_matrix(as_pair(x, y), k)[0, 1])


def information_imbalance(x: Array, y: Array, k: int = 1) -> float:
    """Information Imbalance Delta(x -> y) (Glielmo et al. 2022; dadapy's definition).

    Delta(x -> y) = 2 / (N^2 k) sum_i sum_{j in nn_x^k(i)} rank_y(i, j): for each input, where its k
    nearest neighbours in x (Euclidean, itself excluded) rank among its neighbours in y, ranks from 1
    for the nearest. 2/N when x predicts y's neighbourhoods exactly, about 1 when it tells nothing
    about them. Asymmetric: Delta(x -> y) small and Delta(y -> x) large means x holds y's information
    and more. Ties in y count as the nearer rank. Unlike dadapy (subsets of 2,000), all N inputs.

    Args:
        x: (n, d1) features, torch or numpy.
        y: (n, d2) features of the same inputs in the same order.
        k: neighbours of x per input, 1 <= k < n.
    """
    return float(information_imbalance_matrix(as_pair(x, y), k)[0, 1])


def mutual_knn_matrix(features: Sequence[Array], k: int = 10) -> torch.Tensor:
    """(L, L) mutual k-NN alignment between every pair of L representations of the same inputs."""
    n = _inputs(features)
    check_neighbours(k, n)
    neighbours = [_nearest(_unit_rows(as_matrix(x)), k) for x in features]
    out = torch.ones(len(features), len(features), dtype=torch.float64)
    for a in range(len(features)):
        for b in range(a + 1, len(features)):
            shared = (neighbours[a][:, :, None] == neighbours[b][:, None, :]).any(dim=-1).sum(dim=1)
            out[a, b] = out[b, a] = shared.double().mean() / k
    return out


def information_imbalance_matrix(features: Sequence[Array], k: int = 1) -> torch.Tensor:
    """(L, L) matrix of Delta(a -> b) (row a, column b) between every pair of L representations."""
    n = _inputs(features)
    check_neighbours(k, n)
    neighbours = [_nearest(as_matrix(x), k, euclidean=True) for x in features]
    rank_sums = torch.zeros(len(features), len(features), dtype=torch.float64)
    for b, y in enumerate(features):
        y = as_matrix(y)
        for rows in _blocks(n):
            closeness = _closeness(y, rows, euclidean=True)
            for a, nn_a in enumerate(neighbours):
                at_neighbours = closeness.gather(1, nn_a[rows].to(closeness.device))  # (block, k)
                ranks = (closeness[:, None, :] > at_neighbours[:, :, None]).sum(dim=-1) + 1
                rank_sums[a, b] += ranks.sum().item()
    return 2 * rank_sums / (n * n * k)


def clamp_outliers(x: torch.Tensor, q: float = QUANTILE) -> torch.Tensor:
    """platonic-rep's remove_outliers: x clamped to +-(mean over rows of each row's q-quantile of |x|)."""
    rows = max(1, 2**24 // x.shape[1])  # torch.quantile refuses inputs beyond 2^24 elements
    quantiles = torch.cat([torch.quantile(x[i : i + rows].abs(), q, dim=1) for i in range(0, len(x), rows)])
    limit = quantiles.mean()
    return x.clamp(-limit, limit)


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(clamp_outliers(x), dim=1)


def _nearest(x: torch.Tensor, k: int, euclidean: bool = False) -> torch.Tensor:
    """(n, k) indices of each row's k nearest other rows, nearest first."""
    return torch.cat([_closeness(x, rows, euclidean).topk(k, dim=1).indices for rows in _blocks(len(x))])


def _closeness(x: torch.Tensor, rows: slice, euclidean: bool) -> torch.Tensor:
    """A block of rows of the n x n closeness (larger is nearer), each row's own entry -inf.

    Cosine: the dot products of unit rows. Euclidean: 2 x_i.x_j - |x_j|^2 = |x_i|^2 - |x_i - x_j|^2,
    the same order within each row as minus the distance, without the square root.
    """
    block = x[rows] @ x.T
    if euclidean:
        block = 2 * block - x.square().sum(dim=1)
    index = torch.arange(rows.start, rows.start + len(block), device=block.device)
    block[torch.arange(len(block), device=block.device), index] = -torch.inf
    return block


def _blocks(n: int) -> list[slice]:
    size = max(1, BLOCK_ELEMENTS // n)
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def _inputs(features: Sequence[Array]) -> int:
    rows = [len(x) for x in features]
    if len(set(rows)) > 1:
        raise ConfigError(f"every representation must describe the same inputs; numbers of rows: {rows}")
    return rows[0]
