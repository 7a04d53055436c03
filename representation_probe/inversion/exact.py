"""Exact inversion of MLPs and what makes it fail (paper section 4.2-4.3, Figure S2, the ReLU widths).

An MLP layer is o = f(W x + b). When f is the identity (or tanh/sigmoid, bijective onto their range) and
W is square and non-singular, x = W^-1 (f^-1(o) - b) recovers the layer's input exactly; applied from the
last layer to the first it recovers the image (the paper's eq. 11). ReLU loses the pre-activations of the
units it zeroes, a layer narrower than its input has a null space, and a wider one has no inverse W^-1:
its outputs fill a subspace, which a shifted output O(a) + noise almost surely leaves. Everything here is plain
tensor code on float64 copies of the weights, so the model's own float32 weights stay untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from representation_probe.errors import ConfigError

DTYPES = {"float64": torch.float64, "float32": torch.float32}


@dataclass
class Affine:
    """One MLP layer o = f(W x + b), weights copied to float64."""

    name: str
    weight: torch.Tensor  # (out, in)
    bias: torch.Tensor  # (out,)
    activation: str  # 'none', 'relu', 'tanh' or 'sigmoid'

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.weight.shape)


def affine_layers(net: nn.Sequential) -> list[Affine]:
    """The Linear layers of an MLP (model=mlp), each with the activation that follows it."""
    layers: list[Affine] = []
    for name, module in net.named_children():
        if isinstance(module, nn.Linear):
            bias = module.bias if module.bias is not None else torch.zeros(module.out_features)
            layers.append(Affine(name, module.weight.detach().double(), bias.detach().double(), "none"))
        elif isinstance(module, (nn.ReLU, nn.Tanh, nn.Sigmoid)) and layers:
            layers[-1].activation = type(module).__name__.lower()
        elif not isinstance(module, nn.Flatten):
            raise ConfigError(f"exact inversion handles MLPs (flatten, Linear, activation); {name} is a "
                              f"{type(module).__name__}: use model=mlp")
    return layers


# ---- the forward map and its exact inverse ------------------------------------------------------
def forward(layers: list[Affine], x: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """O(x) for a batch (B, input_size), computed in `dtype` from the weights rounded to it."""
    out = x.to(dtype)
    for layer in layers:
        out = _activate(out @ layer.weight.to(dtype).T + layer.bias.to(dtype), layer.activation)
    return out


def _activate(y: torch.Tensor, activation: str) -> torch.Tensor:
    return {"none": lambda t: t, "relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[activation](y)


def _deactivate(o: torch.Tensor, activation: str) -> torch.Tensor:
    """f^-1: NaN where o is outside the activation's open range (no preimage there)."""
    if activation == "tanh":
        return torch.atanh(torch.where(o.abs() < 1, o, torch.nan))
    if activation == "sigmoid":
        return torch.logit(torch.where((o > 0) & (o < 1), o, torch.nan))
    return o


def require_invertible(layers: list[Affine]) -> None:
    """Say why an exact inverse cannot exist, and what would work, or return quietly."""
    for layer in layers:
        out_features, in_features = layer.shape
        if layer.activation == "relu":
            raise ConfigError(
                f"no exact inverse: {layer.name} is followed by ReLU, which sets every negative "
                "pre-activation to 0 and so loses it (about half of them at initialisation). What works: "
                "model.activation=none, tanh or sigmoid (bijective), or exact=false to measure the ReLU "
                "zero fractions and the Jacobian rank instead, or `invert` with layers widened by 1/p each")
        if out_features < in_features:
            raise ConfigError(
                f"no exact inverse: {layer.name} maps {in_features} values to {out_features}, so a "
                f"{in_features - out_features}-dimensional subspace of its inputs gives the same output. "
                f"What works: square layers, e.g. model.width={in_features}; exact=false for the singular "
                "values and rank of the composed map; `invert` finds one of the many preimages by gradient descent")
        if out_features > in_features:
            raise ConfigError(
                f"no exact inverse: {layer.name} maps {in_features} values to {out_features}, so its "
                f"{out_features}x{in_features} weight has no inverse W^-1 and its outputs fill a "
                f"{in_features}-dimensional subspace that O(a) + noise almost surely leaves. What works: square "
                f"layers, e.g. model.width={in_features}; exact=false for the singular values of the composed "
                "map (its condition number measures how approximately invertible it is); `invert`, since the "
                "model is injective")


def solvers(layers: list[Affine], dtype: torch.dtype, method: str = "solve") -> list:
    """Per square layer, a function (o - b) -> x in `dtype`: an LU solve or the explicit inverse."""
    if method not in ("solve", "inverse"):
        raise ConfigError(f"unknown exact method '{method}'; allowed: solve (LU), inverse (explicit W^-1)")
    out = []
    for layer in layers:
        weight = layer.weight.to(dtype)
        if method == "inverse":  # what the author's script does (torch.inverse)
            inverse = torch.linalg.inv(weight)
            out.append(lambda y, inverse=inverse: y @ inverse.T)
        else:
            lu, pivots = torch.linalg.lu_factor(weight)
            out.append(lambda y, lu=lu, pivots=pivots: torch.linalg.lu_solve(lu, pivots, y.T).T)
    return out


def invert(layers: list[Affine], outputs: torch.Tensor, solve: list) -> torch.Tensor:
    """x = W^-1 (f^-1(o) - b), last layer first, for a batch of outputs (B, out)."""
    x = outputs
    for layer, solve_layer in zip(reversed(layers), reversed(solve)):
        x = solve_layer(_deactivate(x, layer.activation) - layer.bias.to(x.dtype))
    return x


# ---- spectra, ranks and the Jacobian --------------------------------------------------------------
def numerical_rank(singular_values: torch.Tensor, shape: tuple[int, int]) -> int:
    """LAPACK's convention: singular values above max(shape) * eps * sigma_max count."""
    if len(singular_values) == 0 or singular_values[0] == 0:
        return 0
    tol = max(shape) * torch.finfo(singular_values.dtype).eps * singular_values[0]
    return int((singular_values > tol).sum())


def spectrum(matrix: torch.Tensor) -> dict:
    """Singular values (descending) of a float64 (outputs x inputs) matrix, its rank and condition number.

    The condition number is that of the map from its inputs: infinite when some input direction is lost
    (rank below the number of columns, as for any layer narrower than its input).
    """
    values = torch.linalg.svdvals(matrix)
    rank = numerical_rank(values, tuple(matrix.shape))
    smallest = float(values[-1]) if len(values) else 0.0
    injective = rank == matrix.shape[1] and smallest > 0
    return dict(shape=list(matrix.shape), sigma_max=float(values[0]), sigma_min=smallest,
                condition=float(values[0]) / smallest if injective else math.inf, rank=rank, values=values)


def jacobians(layers: list[Affine], x: torch.Tensor) -> list[torch.Tensor]:
    """d(layer n output)/dx at the input x (input_size,), for n = 1..N, in float64.

    The product D_n W_n ... D_1 W_1 with D_k the activation's derivative at x: the composed matrix E of
    the paper for a linear MLP, and the local linear map (which units ReLU keeps) otherwise.
    """
    out, jac = x.double(), None
    result = []
    for layer in layers:
        pre = layer.weight @ out + layer.bias
        out = _activate(pre, layer.activation)
        jac = _slope(pre, out, layer.activation)[:, None] * (layer.weight if jac is None else layer.weight @ jac)
        result.append(jac)
    return result


def _slope(pre: torch.Tensor, out: torch.Tensor, activation: str) -> torch.Tensor:
    """f'(pre) given out = f(pre)."""
    if activation == "relu":
        return (pre > 0).double()
    if activation == "tanh":
        return 1 - out**2
    if activation == "sigmoid":
        return out * (1 - out)
    return torch.ones_like(pre)


def zero_fractions(layers: list[Affine], inputs: torch.Tensor) -> torch.Tensor:
    """(B, N): per input and per layer, the fraction of units the activation sets to exactly 0."""
    out, fractions = inputs.double(), []
    for layer in layers:
        out = _activate(out @ layer.weight.T + layer.bias, layer.activation)
        fractions.append((out == 0).double().mean(dim=1))
    return torch.stack(fractions, dim=1)


def required_widths(input_size: int, p: list[float]) -> dict[str, list[float]]:
    """Widths an MLP needs per layer n to stay invertible, given the zero fraction p_k of each layer.

    `paper`: m (1/p)^n of section 4.3 with the measured p_k (m prod_k 1/p_k). `active`: m prod_k 1/(1 - p_k),
    from counting the units that stay nonzero: a layer of width w keeps (1 - p) w of them and needs at
    least as many as values it must recover. The two agree at p = 1/2, the case the paper considers.
    """
    paper, active, need_paper, need_active = [], [], float(input_size), float(input_size)
    for fraction in p:
        need_paper = need_paper / fraction if fraction > 0 else math.inf
        need_active = need_active / (1 - fraction) if fraction < 1 else math.inf
        paper.append(need_paper)
        active.append(need_active)
    return dict(paper=paper, active=active)
