"""The 3x3 Gaussian convolution N_c of the paper's eq. 5."""

import torch
import torch.nn.functional as F


def gaussian_kernel3(sigma: float) -> torch.Tensor:
    """Normalised 3x3 Gaussian kernel."""
    x = torch.tensor([-1.0, 0.0, 1.0])
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


def smooth(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur each channel of an (N, C, H, W) batch with reflect padding (as torchvision does)."""
    channels = images.shape[1]
    kernel = gaussian_kernel3(sigma).to(images).expand(channels, 1, 3, 3)
    padded = F.pad(images, (1, 1, 1, 1), mode="reflect")
    return F.conv2d(padded, kernel, groups=channels)
