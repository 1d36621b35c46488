"""target-leanpay: a Singer target that loads receivables into Leanpay."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("target-leanpay")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
