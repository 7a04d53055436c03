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
    """The Linear layers of an MLP from models.mlp, each with the activation that follows it."""
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


# ---- the study behind the `invertibility` command -------------------------------------------------
@dataclass
class Study:
    """What `invertibility` measured: summary.json's content plus the arrays behind its files."""

    summary: dict
    reconstructions: dict[str, torch.Tensor]  # precision -> recovered image, flattened
    shifted: torch.Tensor  # a' = a + N(0, shift_std), flattened
    noise: dict[str, torch.Tensor] | None  # per draw: input and output distances, pixels outside [0, 1]
    a_pp_median: torch.Tensor | None  # the a'' at the median input distance
    spectra: dict[str, torch.Tensor]  # 'fc1', ..., 'composed' -> singular values
    relu: list[dict] | None  # per layer: widths, zero fractions, required widths, Jacobian ranks


def study(net: nn.Sequential, target: torch.Tensor, *, seed: int, exact: bool, precisions: list[str],
          method: str, draws: int, noise_std: float, shift_std: float, random_count: int,
          random_mean: float, random_std: float) -> Study:
    """Exact inversion, output noise, spectra and ReLU zero fractions of an MLP at one target image."""
    layers = affine_layers(net)
    a = target.flatten().double()
    unknown = [p for p in precisions if p not in DTYPES]
    if unknown or not precisions:
        raise ConfigError(f"precisions must be a non-empty list of {', '.join(DTYPES)}, got {precisions}")
    if draws < 0:
        raise ConfigError(f"noise.draws must be a non-negative integer, got {draws}")
    if exact:
        require_invertible(layers)  # before the decompositions: a refusal should not take a minute
    per_layer = {layer.name: spectrum(layer.weight) for layer in layers}
    summary: dict = dict(layers=[dict(name=layer.name, activation=layer.activation,
                                      **_scalars(per_layer[layer.name])) for layer in layers])
    jacs = jacobians(layers, a)
    composed = spectrum(jacs[-1])
    summary["composed"] = _scalars(composed) | dict(null_space_dim=a.numel() - composed["rank"])
    spectra = {name: s["values"] for name, s in per_layer.items()} | {"composed": composed["values"]}

    # a' exactly as `invert` draws it for this seed: the generator's first draw is a_0, its second the shift
    gen = torch.Generator().manual_seed(seed)
    torch.randn(target.shape, generator=gen)
    shifted = a + (torch.randn(target.shape, generator=gen) * shift_std).flatten().double()
    out_a = forward(layers, a[None])
    reference = dict(m_i_ref=float((shifted - a).norm()), m_s=float((forward(layers, shifted[None]) - out_a).norm()))
    summary |= reference

    reconstructions, noise, a_pp_median = {}, None, None
    summary["exact"] = summary["noise"] = None
    if exact:
        for layer in layers:
            rank, (out_features, in_features) = per_layer[layer.name]["rank"], layer.shape
            if rank < in_features:
                raise ConfigError(f"cannot invert {layer.name} exactly: its {out_features}x{in_features} weight matrix "
                                  f"is singular (numerical rank {rank} of {in_features}), so "
                                  f"{in_features - rank} input directions give the same output")
        summary["exact"], reconstructions = _exact(layers, a, precisions, method)
        if draws:
            noise, a_pp_median, summary["noise"] = _noise(layers, a, out_a, draws, noise_std, seed, method,
                                                          reference)
    relu = summary["relu"] = None
    if any(layer.activation == "relu" for layer in layers):
        randoms = random_mean + random_std * torch.randn(random_count, a.numel(),
                                                         generator=torch.Generator().manual_seed(seed + 1))
        relu = _relu_table(layers, a, randoms, jacs)
        summary["relu"] = dict(random_inputs=dict(count=random_count, mean=random_mean, std=random_std),
                               input_size=a.numel(), layers=relu,
                               invertible_at_target=relu[-1]["jacobian_rank"] == a.numel())
    return Study(summary, reconstructions, shifted, noise, a_pp_median, spectra, relu)


def _scalars(spec: dict) -> dict:
    return {key: value for key, value in spec.items() if key != "values"}


def _exact(layers: list[Affine], a: torch.Tensor, precisions: list[str], method: str):
    """Forward and inverse in each precision, plus float32's output inverted in float64 (rounding vs arithmetic)."""
    results, images = {}, {}
    runs = [(p, DTYPES[p], DTYPES[p]) for p in precisions]
    if "float32" in precisions and "float64" in precisions:
        runs.append(("float32_output_float64_inverse", torch.float32, torch.float64))
    for name, forward_dtype, inverse_dtype in runs:
        output = forward(layers, a[None], forward_dtype).to(inverse_dtype)
        x = invert(layers, output, solvers(layers, inverse_dtype, method))[0].double()
        error = x - a
        finite = bool(torch.isfinite(x).all())
        results[name] = dict(relative_error=float(error.norm() / a.norm()) if finite else None,
                             m_i=float(error.norm()) if finite else None,
                             max_abs_error=float(error.abs().max()) if finite else None,
                             non_finite=int((~torch.isfinite(x)).sum()))
        images[name] = x
    return results, images


def _noise(layers, a, out_a, draws: int, std: float, seed: int, method: str, reference: dict, chunk: int = 1000):
    """O(a'') = O(a) + N(0, std), each inverted exactly in float64 (Figure S2)."""
    gen = torch.Generator().manual_seed(seed + 2)
    solve = solvers(layers, torch.float64, method)
    inputs, outputs, outside, keep = [], [], [], None
    for start in range(0, draws, chunk):
        count = min(chunk, draws - start)
        shifted_out = out_a + std * torch.randn(count, out_a.shape[1], generator=gen, dtype=torch.float64)
        a_pp = invert(layers, shifted_out, solve)
        inputs.append((a_pp - a).norm(dim=1))
        outputs.append((forward(layers, a_pp) - out_a).norm(dim=1))  # measured, not assumed
        outside.append(((a_pp < 0) | (a_pp > 1)).double().mean(dim=1))
        if keep is None:
            keep = a_pp
    arrays = dict(input_distance=torch.cat(inputs), output_distance=torch.cat(outputs),
                  outside_01=torch.cat(outside))
    finite = torch.isfinite(arrays["input_distance"])
    d_in, d_out = arrays["input_distance"][finite], arrays["output_distance"][finite]
    median_draw = None
    if len(d_in):
        first = arrays["input_distance"][: len(keep)]
        median_draw = keep[int((first - d_in.median()).abs().nan_to_num(math.inf).argmin())]
    quantiles = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95], dtype=torch.float64)
    q = torch.quantile(d_in, quantiles).tolist() if len(d_in) else [None] * 5
    summary = dict(draws=draws, std=std, no_preimage=int((~finite).sum()),
                   input_distance=dict(zip(["q05", "q25", "median", "q75", "q95"], q),
                                       min=float(d_in.min()) if len(d_in) else None,
                                       max=float(d_in.max()) if len(d_in) else None),
                   output_distance_median=float(d_out.median()) if len(d_out) else None,
                   median_over_m_i_ref=q[2] / reference["m_i_ref"] if q[2] is not None else None,
                   fraction_farther_than_a_shift=float((d_in > reference["m_i_ref"]).double().mean()) if len(d_in) else None,
                   fraction_output_closer_than_m_s=float((d_out < reference["m_s"]).double().mean()) if len(d_out) else None,
                   median_fraction_pixels_outside_01=float(arrays["outside_01"][finite].median()) if len(d_in) else None)
    return arrays, median_draw, summary


def _relu_table(layers: list[Affine], a: torch.Tensor, randoms: torch.Tensor, jacs: list[torch.Tensor]) -> list[dict]:
    """Per layer: width, zero fraction p on the target and on random inputs, the widths the argument
    requires, and the rank of the Jacobian up to that layer at the target (the input directions it keeps)."""
    m = a.numel()
    p_target = zero_fractions(layers, a[None])[0].tolist()
    p_random = zero_fractions(layers, randoms).mean(dim=0).tolist()
    need_target, need_random = required_widths(m, p_target), required_widths(m, p_random)
    rows = []
    for n, (layer, jac) in enumerate(zip(layers, jacs)):
        rank = numerical_rank(torch.linalg.svdvals(jac), tuple(jac.shape))
        rows.append(dict(layer=layer.name, width=layer.shape[0], p_target=p_target[n], p_random=p_random[n],
                         active_target=round(layer.shape[0] * (1 - p_target[n])),
                         required_paper=need_random["paper"][n], required_active=need_random["active"][n],
                         required_paper_target=need_target["paper"][n],
                         required_active_target=need_target["active"][n],
                         jacobian_rank=rank, lost_directions=m - rank))
    return rows
