"""The 3x3 Gaussian convolution N_c of the paper's eq. 5."""

import math

import torch
import torch.nn.functional as F


def gaussian_weights(sigma: float) -> tuple[float, float]:
    """(edge, centre) of the normalised 1-D 3-tap Gaussian; the 3x3 kernel is their outer product."""
    edge = math.exp(-1 / (2 * sigma**2))
    return edge / (1 + 2 * edge), 1 / (1 + 2 * edge)


def gaussian_kernel3(sigma: float) -> torch.Tensor:
    """Normalised 3x3 Gaussian kernel."""
    edge, centre = gaussian_weights(sigma)
    g = torch.tensor([edge, centre, edge])
    return torch.outer(g, g)


def smooth(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur each channel of an (N, C, H, W) batch with reflect padding (as torchvision does).

    Separable and written with element-wise ops, not conv2d: autocast (bf16-mixed) runs convolutions in
    bf16, which would round the float32 image to 8 bits of mantissa at every step; these ops stay float32.
    """
    edge, centre = gaussian_weights(sigma)
    x = F.pad(images, (1, 1, 1, 1), mode="reflect")
    x = centre * x[..., 1:-1, :] + edge * (x[..., :-2, :] + x[..., 2:, :])  # along the height
    return centre * x[..., 1:-1] + edge * (x[..., :-2] + x[..., 2:])  # along the width
