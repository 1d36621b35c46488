"""A local stand-in for the Leanpay public API, for end-to-end tests, demos and benchmarks.

The live API documents no errors, rate limits or duplicate semantics; this server
implements the documented surface (from `target_leanpay.resources`) plus switches for
each plausible behaviour, and records what it received.
"""

from leanpay_standin.server import StandIn
from leanpay_standin.store import DUPLICATE_MODES, DuplicateMode

__all__ = ["DUPLICATE_MODES", "DuplicateMode", "StandIn"]
