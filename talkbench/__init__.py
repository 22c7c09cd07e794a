"""talkbench: data preparation, training and benchmarking for AU-driven talking-head generation."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("talkbench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
