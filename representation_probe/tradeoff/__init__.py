"""Classification vs reconstruction in one shared latent (Rathjens & Wiskott, arXiv 2401.09237)."""

from representation_probe.tradeoff.module import TradeoffModule, scale_gradient
from representation_probe.tradeoff.nets import ARCHITECTURES, TradeoffNet, build_net

__all__ = ["ARCHITECTURES", "TradeoffModule", "TradeoffNet", "build_net", "scale_gradient"]
