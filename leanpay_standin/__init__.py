"""A local stand-in for the Leanpay public API, for end-to-end tests, demos and benchmarks.

It serves the surface described in the project's Leanpay API notes (its own table, in
`leanpay_standin.api`; nothing is imported from target_leanpay, so the product's reading
of the API is checked against an independent one). The live API documents no errors,
rate limits or duplicate semantics, so the server has switches for each plausible
behaviour (settings, fault rules, a token-bucket rate limit), and records what it
received.

`StandIn` is imported on first use: it needs werkzeug (the 'standin' extra), and the
`leanpay-standin` command must be able to say so instead of failing on import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from leanpay_standin.store import DUPLICATE_MODES, LIST_ORDERS, DuplicateMode, ListOrder

if TYPE_CHECKING:
    from leanpay_standin.server import StandIn

__all__ = ["DUPLICATE_MODES", "LIST_ORDERS", "DuplicateMode", "ListOrder", "StandIn"]


def __getattr__(name: str) -> Any:
    if name == "StandIn":
        from leanpay_standin.server import StandIn  # noqa: PLC0415 - werkzeug on demand

        return StandIn
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
