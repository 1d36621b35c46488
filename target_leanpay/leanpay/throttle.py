"""Throttle: how many requests the client has on the wire, and when it must hold off.

Leanpay documents no rate limit. When it answers 429 it has said that the door is shut,
and knocking again before it opens is what gets a key banned for longer or throttled
for the whole tenant. So:

* a 429 pauses *every* request of the run, not only the one that got it, until its
  `Retry-After` has passed (or the retry's backoff, when it gives none);
* how fast requests go follows additive increase, multiplicative decrease (AIMD, as
  TCP's congestion window does). A 429 halves the number allowed in flight, at most once
  per round of requests (the 429s of requests sent before the last cut do not cut
  again). At one request in flight, a 429 halves the rate instead: requests start at
  least twice as far apart as the refused one took, and at least `SHORTEST_SPACING`
  (then twice as far again, up to `LONGEST_SPACING`). `CLEAN_ANSWERS_PER_STEP` clean
  answers per request allowed in flight undo one step: the spacing shrinks by a quarter
  (and goes below 5 ms), then the number in flight grows by one, up to its cap. A
  rate-limited tenant is neither hammered nor left idle.

Finding the pace costs a fixed number of 429s at the start of a run: halving down to one
in flight, then one per doubling of the spacing from 5 ms (or two round trips) up to the
tenant's interval (about ten in all for 5 requests a second). After that, a 429 only
marks a step back up. A 429 that slowed the throttle down costs its request no retry
(the client changed pace: the next try is a new one), so that search never exhausts a
request's retries; a 429 at the slowest pace does.

Each change is logged once, at INFO.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from target_leanpay.leanpay.errors import Stopped
from target_leanpay.output.progress import plural

logger = logging.getLogger("target-leanpay.client")

CLEAN_ANSWERS_PER_STEP = 32
"""Clean answers, per request allowed in flight, before one step back up.

Each step up probes the limit and, on a rate-limited tenant, costs a 429 or two: 32
keeps that near 5% of requests at worst, and still climbs from 1 back to 4 in flight
within ~200 clean answers (a few seconds) after a passing burst."""
POLL_SECONDS = 0.2
"""How often a waiting request looks at the run's stop flag."""
SHORTEST_SPACING = 0.005
"""Below this, requests are no longer spaced: the number in flight takes over."""
LONGEST_SPACING = 60.0
"""The slowest pace a 429 leads to (one request a minute). Beyond it a 429 no longer slows
the throttle, so it costs a retry: a tenant that refuses everything fails the run."""


class Throttle:
    """Admits requests one by one; shared by every thread of the client.

    `caps`: the most requests of each method on the wire at once (POST: max_in_flight,
    GET: max_list_in_flight); the AIMD limit, on all of them together, starts at the
    largest cap.
    """

    def __init__(self, caps: Mapping[str, int], stopping: threading.Event) -> None:
        self.max_in_flight = max(caps.values())
        self.limit = self.max_in_flight
        self.spacing = 0.0
        """Seconds between two request starts (0: not spaced)."""
        self._caps = dict(caps)
        self._stopping = stopping
        self._changed = threading.Condition(threading.Lock())
        self._in_flight = 0
        self._by_method = dict.fromkeys(caps, 0)
        self._paused_until = 0.0
        self._next_start = 0.0
        self._last_cut = 0.0
        self._clean = 0

    @contextmanager
    def admitted(self, method: str) -> Iterator[float]:
        """Wait for a free slot outside any pause; yield the moment the request started."""
        cap = self._caps[method]
        with self._changed:
            while True:
                if self._stopping.is_set():
                    raise Stopped("the run is stopping: no new request")
                now = time.monotonic()
                wait = max(self._paused_until, self._next_start) - now
                if wait <= 0 and self._in_flight < self.limit and self._by_method[method] < cap:
                    break
                self._changed.wait(min(wait, POLL_SECONDS) if wait > 0 else POLL_SECONDS)
            self._in_flight += 1
            self._by_method[method] += 1
            self._next_start = now + self.spacing
        try:
            yield now
        finally:
            with self._changed:
                self._in_flight -= 1
                self._by_method[method] -= 1
                self._changed.notify_all()

    def clean(self) -> None:
        """A request was answered without a 429: after enough of them, one step back up."""
        with self._changed:
            if not self.spacing and self.limit >= self.max_in_flight:
                return
            self._clean += 1
            if self._clean < CLEAN_ANSWERS_PER_STEP * self.limit:
                return
            self._clean = 0
            if self.spacing:
                self.spacing = 0.75 * self.spacing
                if self.spacing < SHORTEST_SPACING:
                    self.spacing = 0.0
                message = _spacing(self.spacing)
            else:
                self.limit += 1
                message = f"up to {plural(self.limit, 'request')} in flight"
            self._changed.notify_all()
        logger.info("Leanpay answers cleanly again: %s", message)

    def too_many(self, started: float) -> bool:
        """A request started at `started` was answered 429: slow down, at most once per
        round. True when it did (the 429 then costs its request no retry)."""
        with self._changed:
            self._clean = 0
            now = time.monotonic()
            if started < self._last_cut:  # sent before the last cut, which covers it
                return False
            if self.limit > 1:
                self.limit = max(1, self.limit // 2)
                slower = f"up to {plural(self.limit, 'request')} in flight (halved)"
            elif self.spacing < LONGEST_SPACING:  # one in flight is still too many
                spacing = max(2 * self.spacing, 2 * (now - started), SHORTEST_SPACING)
                self.spacing = min(LONGEST_SPACING, spacing)
                slower = _spacing(self.spacing)
            else:
                return False
            self._last_cut = now
        logger.info("Leanpay answered 429 (too many requests): %s", slower)
        return True

    def pause(self, seconds: float) -> None:
        """Every request waits `seconds` from now (a 429's Retry-After, or its backoff)."""
        with self._changed:
            resume = time.monotonic() + seconds
            if resume <= self._paused_until + 0.001:
                return
            self._paused_until = resume
        logger.info("Leanpay answered 429: every request waits %.1f s", seconds)


def _spacing(seconds: float) -> str:
    if not seconds:
        return "requests are no longer spaced out"
    return f"one request in flight, starting at least {seconds:.2f} s apart"
