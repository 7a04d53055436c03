"""Layer outputs of networks torch.fx cannot trace (Hugging Face models, a user's module with data-dependent
control flow): forward hooks on named modules, registered for one forward and removed after it, so nothing
stays behind on the user's model however often it is called, and whatever fails inside the forward.

A module called several times in one forward (a reused activation) gives its last call's output; the
forward stops as soon as every requested output is in, which truncates it after the deepest one. What a
module returns is kept whole; outputs.py says which element of a container is its layer.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn

from representation_probe.errors import ConfigError
from representation_probe.models.outputs import rebuild


class _Done(Exception):
    """Raised by the last hook that was waited for: the rest of the forward is not needed."""


def skeleton(value):
    """`value` with every tensor as a meta tensor of its shape and dtype: what a layer listing keeps of a
    module's output, without its memory."""
    if isinstance(value, torch.Tensor):
        return torch.empty(value.shape, dtype=value.dtype, device="meta")
    return rebuild(value, skeleton)


def trace_calls(net: nn.Module, images: torch.Tensor) -> tuple[dict[str, object], dict[str, int]]:
    """One forward with a hook on every named module: each module -> the skeleton of its output (its last
    call's, in the order the modules' last calls end), and how often each module was called."""
    outputs: dict[str, object] = {}
    calls: Counter[str] = Counter()

    def hook(name: str):
        def record(module, args, output) -> None:
            calls[name] += 1
            outputs.pop(name, None)  # a later call moves it to the end
            outputs[name] = skeleton(output)
        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in net.named_modules() if name]
    try:
        with torch.no_grad():
            net(images)
    finally:
        for handle in handles:
            handle.remove()
    return outputs, dict(calls)


class HookExtractor(nn.Module):
    """images -> {key: output of module} for `return_nodes` (module name -> key), from one forward that ends
    after the last call of the last requested module (`calls`: how often each module runs per forward). An
    output is what the module returned, a container too (the caller picks its layer, outputs.py)."""

    def __init__(self, net: nn.Module, return_nodes: dict[str, str], calls: dict[str, int]):
        super().__init__()
        self.net = net
        self.return_nodes = dict(return_nodes)
        self.calls = {name: calls[name] for name in return_nodes}
        modules = dict(net.named_modules())
        self._targets = {name: modules[name] for name in return_nodes}  # a plain dict: not registered twice

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs: dict[str, torch.Tensor] = {}
        seen: Counter[str] = Counter()

        def hook(name: str):
            def capture(module, args, output) -> None:
                seen[name] += 1
                if seen[name] == self.calls[name]:
                    outputs[self.return_nodes[name]] = output
                    if len(outputs) == len(self.return_nodes):
                        raise _Done
            return capture

        handles = [module.register_forward_hook(hook(name)) for name, module in self._targets.items()]
        try:
            self.net(images)
        except _Done:
            pass
        finally:
            for handle in handles:
                handle.remove()
        missing = [name for name in self.return_nodes if self.return_nodes[name] not in outputs]
        if missing:  # a branch this input did not take
            raise ConfigError(f"layer {missing[0]} was not called in this forward (it was in the model's first one)")
        return outputs
