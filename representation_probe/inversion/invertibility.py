"""The study behind the `invertibility` command: exact inversion of an MLP in each precision, inverted
output noise (Figure S2), spectra, and the ReLU zero fractions against the widths the paper requires."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from representation_probe import metrics
from representation_probe.errors import ConfigError
from representation_probe.inversion.exact import (DTYPES, Affine, affine_layers, forward, invert, jacobians,
                                                  numerical_rank, require_invertible, required_widths, solvers,
                                                  spectrum, zero_fractions)


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

    _, shift = metrics.draws(seed, target.shape, shift_std=shift_std)  # a' exactly as `invert` draws it
    shifted = a + shift.flatten().double()
    out_a = forward(layers, a[None])
    reference = dict(m_i_ref=float(metrics.distance(shifted[None], a[None])),
                     m_s=float(metrics.distance(forward(layers, shifted[None]), out_a)))
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
