"""A layer's output is one tensor, and the user knows which.

A module may return a container: a tuple or list, a dict, a namedtuple, a Hugging Face `ModelOutput`. Its layer
is then one documented element: the first floating-point tensor, depth first (a `ModelOutput`'s first field is
its `last_hidden_state`); `<layer>:<element>` chooses another, an index or a key, chained for nested containers
(`blocks.0:1`, `encoder:last_hidden_state`, `attn:0:1`). The same syntax serves every study and the command line.
A tensor is a layer only if it holds floating-point values for each image of the batch: scalars, shapes, masks
and index tensors never are.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from representation_probe.errors import ConfigError

SEPARATOR = ":"
Path = tuple[int | str, ...]  # the elements chosen, outermost first


def split(name: str) -> tuple[str, Path]:
    """`blocks.0:1` -> ('blocks.0', (1,)); `encoder:last_hidden_state` -> ('encoder', ('last_hidden_state',))."""
    base, *parts = name.split(SEPARATOR)
    if any(not part for part in parts):
        raise ConfigError(f"layer '{name}': an element after '{SEPARATOR}' is an index or a key, e.g. "
                          f"{base}{SEPARATOR}0 or {base}{SEPARATOR}last_hidden_state")
    return base, tuple(int(part) if part.lstrip("-").isdigit() else part for part in parts)


def joined(base: str, path: Path) -> str:
    return SEPARATOR.join([base, *map(str, path)])


def children(value) -> list[tuple[int | str, object]]:
    """The elements of a container, in order, each with the index or key that picks it (none for a tensor)."""
    if isinstance(value, Mapping):  # dicts and ModelOutputs (an OrderedDict of the fields that are set)
        return list(value.items())
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple: by name, as its fields read
        return list(zip(value._fields, value))
    if isinstance(value, (tuple, list)):
        return list(enumerate(value))
    return []


def pick(value, path: Path, name: str = "the layer"):
    """The element `path` chooses in a (nested) container output."""
    for step in path:
        elements = dict(children(value))
        keys = list(elements)
        if isinstance(step, int):  # by position, in every kind of container
            key = keys[step] if -len(keys) <= step < len(keys) else None
        else:
            key = step if step in elements else None
        if key is None:
            raise ConfigError(f"{name} has no element {step!r}: its output is {kind(value)}"
                              + (f" with elements {', '.join(map(str, keys))}" if keys else ""))
        value = elements[key]
    return value


def is_layer(value, batch: int) -> bool:
    """A tensor of floating-point values per image: (batch, ...) with at least one value per image."""
    return (isinstance(value, torch.Tensor) and value.is_floating_point() and value.ndim >= 2
            and value.shape[0] == batch)


def default_path(value, batch: int) -> Path | None:
    """The path to the first layer tensor, depth first (() for a tensor that is one); None when there is none."""
    if isinstance(value, torch.Tensor):
        return () if is_layer(value, batch) else None
    for key, element in children(value):
        inner = default_path(element, batch)
        if inner is not None:
            return (key, *inner)
    return None


def kind(value) -> str:
    """`tensor`, `tuple(2)`, `BaseModelOutput`, `dict(3)`: what a module returns, in a word."""
    if isinstance(value, torch.Tensor):
        return "tensor"
    if isinstance(value, (tuple, list)) and not hasattr(value, "_fields"):
        return f"{type(value).__name__}({len(value)})"
    if type(value) is dict:
        return f"dict({len(value)})"
    return type(value).__name__


def describe(value, path: Path) -> str:
    """What the layer reads of a module's output: `tensor`, `[0] of tuple(2)`, `last_hidden_state of
    BaseModelOutput`."""
    if not path:
        return kind(value)
    steps = "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path).lstrip(".")
    return f"{steps} of {kind(value)}"


def rebuild(value, fn):
    """The container `value` with `fn` applied to each element (tuples, namedtuples, lists, dicts); anything
    else as it is."""
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*map(fn, value))
    if isinstance(value, (tuple, list)):
        return type(value)(map(fn, value))
    if isinstance(value, Mapping):
        mapped = {key: fn(element) for key, element in value.items()}
        try:  # a ModelOutput stays one (its kind names the layer's output)
            return mapped if type(value) is dict else type(value)(**mapped)
        except TypeError:
            return mapped
    return value
