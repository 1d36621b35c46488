"""A local stand-in for the Leanpay public API, for end-to-end tests, demos and benchmarks.

It serves the surface described in the project's Leanpay API notes (its own table, in
`leanpay_standin.api`; nothing is imported from target_leanpay, so the product's reading
of the API is checked against an independent one). The live API documents no errors,
rate limits or duplicate semantics, so the server has switches for each plausible
behaviour, and records what it received.
"""

from leanpay_standin.server import StandIn
from leanpay_standin.store import DUPLICATE_MODES, DuplicateMode

__all__ = ["DUPLICATE_MODES", "DuplicateMode", "StandIn"]
