"""The author's inversion loop, written like his `resnet_representations.py`: the benches' baseline.

One run per layer and image: `torchvision.models.resnet50()` built per run (torch.hub.load in the
original), a hand-truncated forward, `eval()` with the weight gradients left on (and never zeroed), L1 sum,
`a -= eps * grad`, `gaussian_blur(a, 3, sigma)` with sigma 2.4 -> 0.4 over the run (eq. 5). Used by
bench/invert_bench.py (throughput) and bench/time_to_quality.py (seconds until m_g/m_s <= a threshold).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torchvision
import torchvision.transforms.functional as TF
from torch import nn

LAYERS = ["conv1", "conv2", "conv3", "conv4", "conv5"]
SIGMA = (2.4, 0.4)
# The paper's hand-tuned eps, 1/2 at conv1 down to 1/1000 at conv5 (it scales the update, not the cost).
PAPER_EPS = {"conv1": 0.5, "conv2": 0.1, "conv3": 0.02, "conv4": 0.005, "conv5": 0.001}


class NewResNet(nn.Module):
    """The author's hand-truncated forward, cut after `layer` (conv1 = relu, conv2 = layer1, ...)."""

    def __init__(self, model: nn.Module, layer: str):
        super().__init__()
        self.model, self.depth = model, LAYERS.index(layer)

    def forward(self, x):
        x = self.model.conv1(x)
        x = self.model.bn1(x)
        x = self.model.relu(x)
        if self.depth >= 1:
            x = self.model.maxpool(x)
            x = self.model.layer1(x)
        if self.depth >= 2:
            x = self.model.layer2(x)
        if self.depth >= 3:
            x = self.model.layer3(x)
        if self.depth >= 4:
            x = self.model.layer4(x)
        return x


@dataclass
class Run:
    """One run of the loop: final m_g / m_s and m_i, and per step the time it ended (perf_counter) and,
    when tracked, m_g / m_s of the image that step started from."""

    ratio: float = float("nan")
    m_i: float = float("nan")
    ends: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    stopped_at: int | None = None  # the step whose image reached `stop_below`


def run(layer: str, image: torch.Tensor, eps: float, steps: int, track: bool = False,
        stop_below: float | None = None) -> Run:
    """One run of the author's script for one layer and a (1, 3, H, W) image in [0, 1].

    `track` computes m_g / m_s at every step from the step's own forward (the original computes it at the
    end only); `stop_below` ends the run as soon as it is reached (an oracle the original does not have).
    """
    out = Run()
    size = image.shape[-1]
    resnet = torchvision.models.resnet50()  # untrained
    resnet.eval()  # eval() only: the weights keep requires_grad=True
    resnet2 = NewResNet(resnet, layer).eval()
    target_tensor = resnet2(image).detach()
    shifted = image + torch.randn(1, 3, size, size) / 20
    m_s = torch.sqrt(torch.sum((target_tensor - resnet2(shifted)) ** 2)).detach()
    single_input = torch.randn(1, 3, size, size) / 20 + 0.7
    for i in range(steps):
        single_input = single_input.detach()
        single_input.requires_grad = True
        output = resnet2(single_input)
        loss = torch.sum(torch.abs(target_tensor - output))
        if track or stop_below is not None:
            out.ratios.append(float(torch.sqrt(torch.sum((target_tensor - output.detach()) ** 2)) / m_s))
            if stop_below is not None and out.ratios[-1] <= stop_below:
                out.stopped_at, single_input = i, single_input.detach()
                out.ends.append(time.perf_counter())
                break
        loss.backward()  # also computes, and accumulates into, .grad of every weight, as the original does
        sigma = SIGMA[0] * (steps - i) / steps + SIGMA[1] * i / steps
        single_input = single_input.detach() - eps * single_input.grad
        single_input = TF.gaussian_blur(single_input, 3, sigma=sigma)  # eq. 5
        out.ends.append(time.perf_counter())
    with torch.no_grad():
        m_g = torch.sqrt(torch.sum((target_tensor - resnet2(single_input)) ** 2))
    out.ratio, out.m_i = float(m_g / m_s), float(torch.sqrt(torch.sum((single_input - image) ** 2)))
    return out
