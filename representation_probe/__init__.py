"""representation_probe: what does each layer of a vision model still know about its input?"""

from representation_probe.errors import ConfigError

__all__ = ["ConfigError"]
