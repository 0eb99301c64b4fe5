"""The runtime's version, from the installed distribution (one source of truth: pyproject)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("shiftboss")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
