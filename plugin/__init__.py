"""deltaface host side: video I/O, the two-pass pipeline, the command line, host adapters."""

from plugin.version import __version__

__all__ = ["__version__"]
