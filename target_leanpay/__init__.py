"""target-leanpay: a Singer target that loads receivables into Leanpay."""

from typing import Any


def __getattr__(name: str) -> Any:
    """`__version__`, looked up on first use.

    importlib.metadata scans every installed distribution (~0.1-0.3 s): importing the
    package must stay instant, so that the command installs its signal handlers first.
    """
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        found = version("target-leanpay")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        found = "0.0.0"
    globals()["__version__"] = found
    return found
