"""LeanpayClient: the one place that speaks HTTP to Leanpay; DryRunClient stands in for it.

One `requests.Session`, shared by the sending threads and pooled to the in-flight count,
a timeout on every call, and one retry policy (`backoff`) that follows from what Leanpay
may have stored:

* retried: a 429 (by definition not processed), a GET's or a PUT's 5xx or lost answer
  (both are idempotent: a PUT sent twice leaves the object as sent once), a connection
  that failed *before* the request was sent; after `Retry-After` (seconds or HTTP-date,
  capped at `max_retry_wait`), else exponential backoff with full jitter;
* not retried here: a POST sent but unanswered (dropped, timed out, cut off) or answered
  5xx (a gateway's 502, 503 or 504 can follow a batch the backend stored before it timed
  out): `Ambiguous`, and the caller checks which items exist before sending them again;
* never retried: 401/403 (`AuthError`), other 4xx (`ItemsRefused` for 400/409/422,
  whose items are worth isolating; `ApiError` otherwise).

Every request first passes the `Throttle` (throttle.py). A 429 that made it slow down
costs no retry (`max_retries` counts the others): finding a tenant's pace must not use
up a request's retries. The API key only ever travels in the `Authorization` header;
nothing here logs headers.
"""

from __future__ import annotations

import email.utils
import itertools
import logging
import os
import random
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Generator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, NamedTuple

import backoff
import msgspec
import requests
import urllib3
from requests.adapters import HTTPAdapter

from target_leanpay import __version__
from target_leanpay.config.redaction import RedactSecrets
from target_leanpay.leanpay.errors import (
    Ambiguous,
    ApiError,
    AuthError,
    ItemsRefused,
    RetriesExhausted,
    quote,
)
from target_leanpay.leanpay.throttle import Throttle
from target_leanpay.output.progress import plural
from target_leanpay.records.resources import Resource

logger = logging.getLogger("target-leanpay.client")

API_PATH = "/v1/public"
"""How the URL of Leanpay's public API ends (https://api.leanpay.fr/v1/public)."""
ITEM_STATUSES = frozenset({400, 409, 422})
"""Refusals that blame the content of the batch rather than the request."""

_json_encode = msgspec.json.Encoder().encode

OnRetry = Callable[[str], None]
"""Told about each retry (the message logged), so the caller can count it."""


def encode_batch(resource: Resource, items: Sequence[dict[str, Any]]) -> bytes:
    """The JSON body of a batch import: `{"invoices": [...]}`."""
    return _json_encode({resource.body_key: items})


class Created(msgspec.Struct, frozen=True):
    """What the target reads of an object Leanpay created (other fields are skipped)."""

    id: str | None = None
    externalId: str | None = None  # noqa: N815 - Leanpay's name
    createdAt: str | None = None  # noqa: N815 - kept by the tenant index
    tenantId: str | None = None  # noqa: N815 - names the tenant index
    issueDate: Any = None  # noqa: N815 - dates echoed: they show the tenant's zone (date_zone.py)
    dueDate: Any = None  # noqa: N815
    sentDate: Any = None  # noqa: N815


class _Answer(msgspec.Struct):
    """The part of a batch answer the target reads: `{"data": [...]}`."""

    data: list[Created]


_decode_answer = msgspec.json.Decoder(_Answer).decode


IDEMPOTENT = frozenset({"GET", "PUT"})
"""Methods whose request may be sent again whatever became of the first one."""

GATEWAY_STATUSES = frozenset({502, 503, 504})
"""5xx a proxy answers while Leanpay may still be working on the request: a 503 too, when
the backend timed out after storing the batch."""


class _Answered(NamedTuple):
    """An answer read whole: what the client looks at."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        """The body as text, for messages (never raises)."""
        return self.body.decode("utf-8", "replace")


class _Retryable(Exception):
    """A failure worth another attempt; carries the wait it must take, when decided (the
    server's Retry-After, or a 429's pause), else the retry's backoff decides."""

    def __init__(
        self,
        error: ApiError,
        retry_after: float | None,
        *,
        free: bool = False,
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after
        self.free = free
        """A 429 that slowed the throttle down: the retry it asks for is not counted."""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # not '²', which isdigit() also accepts
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _backoff(retry_after: float | None, attempt: int, base: float, cap: float) -> float:
    """Retry-After (capped) when the server gives one, else exponential backoff with full
    jitter: the wait of every retry, and of a 429's pause."""
    if retry_after is not None:
        return min(retry_after, cap)
    return random.uniform(0, min(cap, base * 2**attempt))


def _wait_times(base: float, cap: float) -> Generator[float, _Retryable | None, None]:
    failure = yield 0.0
    for attempt in itertools.count():
        retry_after = None if failure is None else failure.retry_after
        failure = yield _backoff(retry_after, attempt, base, cap)


class LeanpayClient:
    """Sends batch imports and lists invoices, with the retry policy above."""

    def __init__(
        self,
        *,
        api_url: str,
        api_key: str,
        timeout: float,
        max_retries: int,
        max_retry_wait: float,
        max_in_flight: int,
        max_list_in_flight: int,
        stopping: threading.Event,
        backoff_base: float = 0.5,
        unowned_retry: OnRetry | None = None,
    ) -> None:
        """`max_in_flight`: the most POSTs on the wire at once; `max_list_in_flight`: the
        most list pages. The throttle may allow fewer after a 429. `unowned_retry` is told
        of each retry of a request no stream's `on_retry` counts (a listing's GETs), so
        that the run's summary counts every retry it logged."""
        self.api_url = api_url.rstrip("/")
        self.unowned_retry = unowned_retry
        self.host = urllib.parse.urlsplit(self.api_url).netloc.rpartition("@")[2]
        """`host:port`, named when Leanpay cannot be reached (never what is written before
        an `@`: the key, which settings refuse there anyway)."""
        self.timeout = (min(10.0, timeout), timeout)
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self.backoff_base = backoff_base
        self.stopping = stopping
        self.throttle = Throttle({"POST": max_in_flight, "GET": max_list_in_flight}, stopping)
        self._attempt = threading.local()
        """The attempt a request is on (0: the first), for a 429's backoff."""
        self._scrub = RedactSecrets([api_key]).scrub  # bodies may echo the key: mask first
        self._templates: dict[tuple[str, str], requests.PreparedRequest] = {}
        self.session = requests.Session()
        # Proxies and CA bundle from the environment, read once: with trust_env on,
        # requests re-reads os.environ and ~/.netrc on every call (~100 µs a request).
        self.session.proxies.update(requests.utils.get_environ_proxies(self.api_url))
        ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if ca_bundle:
            self.session.verify = ca_bundle
        self.session.trust_env = False
        connections = max_in_flight + max_list_in_flight  # a re-listing beside the POSTs
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=connections, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update(
            {
                "Authorization": api_key,
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": f"target-leanpay/{__version__}",
            }
        )

    def close(self) -> None:
        """Release pooled connections."""
        self.session.close()

    def _prepare(
        self, method: str, path: str, body: bytes | None, params: dict[str, Any] | None
    ) -> requests.PreparedRequest:
        """A request from a per-path template: the session's merging is done once per path.

        `Session.request` re-merges headers, cookies, auth and hooks for every call; for
        ~1,000 POSTs a second that is a large share of the client's CPU.
        """
        if params is not None:
            return self.session.prepare_request(
                requests.Request(method, self.api_url + path, params=params)
            )
        template = self._templates.get((method, path))
        if template is None:
            template = self.session.prepare_request(
                requests.Request(method, self.api_url + path, data=b"{}")
            )
            self._templates[(method, path)] = template
        prepared = template.copy()
        prepared.prepare_body(body, None)
        return prepared

    def post_batch(
        self,
        resource: Resource,
        items: Sequence[dict[str, Any]],
        *,
        on_retry: OnRetry | None = None,
    ) -> list[Created] | None:
        """POST one batch; return the objects Leanpay's answer says it created.

        None when the answer is not the documented `{"data": [...]}`. Redirects are not
        followed: requests would turn the POST into a GET whose 200 proves nothing.
        """
        body = encode_batch(resource, items)
        answer = self._with_retries(
            lambda: self._send("POST", resource.path, body=body), on_retry=on_retry
        )
        try:  # decoded without building a dict per created object
            return _decode_answer(answer.body).data
        except msgspec.DecodeError:
            return None

    def put(self, path: str, body: dict[str, Any], *, on_retry: OnRetry | None = None) -> None:
        """PUT one object's new values (`/links/{id}`); retried like a GET: idempotent.
        Raises `ItemsRefused` for 400/409/422, `ApiError` (status 404) for an unknown id."""
        encoded = _json_encode(body)
        self._with_retries(lambda: self._send("PUT", path, body=encoded), on_retry=on_retry)

    def get_page(self, path: str, page: int) -> dict[str, Any]:
        """GET one page of a list endpoint (`{data, count, total, page, pageCount}`)."""
        answer = self._with_retries(
            lambda: self._send("GET", path, params={"page": page}), on_retry=None
        )
        return self._object(answer, f"GET {path}?page={page}", listed=True)

    def find(self, path: str) -> dict[str, Any] | None:
        """GET one object by its Leanpay id (`/invoices/{id}`); None when Leanpay answers
        404 (it does not hold it). Retried like any GET."""
        try:  # params: no per-path template (one per id would be kept for the whole run)
            answer = self._with_retries(lambda: self._send("GET", path, params={}), on_retry=None)
        except ApiError as error:
            if error.status == 404:
                return None
            raise
        return self._object(answer, f"GET {path}")

    def _object(self, answer: _Answered, where: str, *, listed: bool = False) -> dict[str, Any]:
        """The answer's JSON object (holding a `data` list when `listed`), else `ApiError`."""
        try:
            found = msgspec.json.decode(answer.body)
        except msgspec.DecodeError:
            found = None
        if not isinstance(found, dict) or (listed and not isinstance(found.get("data"), list)):
            raise ApiError(
                f"{where} answered an unexpected body",
                status=answer.status,
                body=self._scrub(answer.text),
            )
        return found

    def _with_retries(
        self,
        call: Callable[[], _Answered],
        *,
        on_retry: OnRetry | None,
    ) -> _Answered:
        attempts = counted = 0
        on_retry = on_retry or self.unowned_retry

        def give_up(failure: Exception) -> bool:
            nonlocal attempts, counted
            attempts += 1
            counted += not (isinstance(failure, _Retryable) and failure.free)
            return self.stopping.is_set() or counted > self.max_retries

        def log_retry(details: Any) -> None:
            failure = details["exception"]
            left = plural(self.max_retries - counted, "retry")
            message = (
                f"{failure.error} (attempt {attempts}{', not counted' if failure.free else ''};"
                f" {left} left); retrying in {details['wait']:.1f} s"
            )
            logger.warning(message)
            if on_retry is not None:
                on_retry(message)

        def attempt() -> _Answered:
            self._attempt.number = attempts  # a 429's backoff (`_too_many`) needs it
            return call()

        retrying = backoff.on_exception(
            _wait_times,
            _Retryable,
            max_tries=None,  # give_up counts: a 429 that slowed the throttle is free
            giveup=give_up,
            on_backoff=log_retry,
            raise_on_giveup=True,
            jitter=None,
            logger=None,
            base=self.backoff_base,
            cap=self.max_retry_wait,
        )(attempt)
        try:
            return retrying()
        except _Retryable as exhausted:
            error = exhausted.error
            ended = (
                "stopping"
                if self.stopping.is_set()
                else f"gave up after {plural(attempts, 'attempt')}"
            )
            raise RetriesExhausted(
                f"{error} ({ended})", status=error.status, body=error.body
            ) from None

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        params: dict[str, Any] | None = None,
    ) -> _Answered:
        where = f"{method} {path}"
        try:
            prepared = self._prepare(method, path, body, params)  # before waiting for a slot
            with self.throttle.admitted("GET" if method == "GET" else "POST") as started:
                answer = self._exchange(prepared)
                if answer.status == 429:  # slow down before the slot is free again
                    self._too_many(where, answer, started)
        except (requests.Timeout, requests.ConnectionError, urllib3.exceptions.HTTPError) as exc:
            if isinstance(exc, requests.ConnectTimeout) or _never_sent(exc):
                raise _Retryable(ApiError(f"{where}: {self._unreachable(exc)}"), None) from None
            if method in IDEMPOTENT:
                raise _Retryable(ApiError(f"{where}: {_reason(exc)}"), None) from None
            raise Ambiguous(
                f"{where}: the request was sent but no answer came back ({_reason(exc)}); "
                "Leanpay may have stored it"
            ) from None
        except requests.RequestException as exc:  # e.g. an invalid header: nothing was sent
            raise ApiError(f"{where}: {self._scrub(_reason(exc))}") from None
        if answer.status < 500:
            self.throttle.clean()
        return self._classify(method, where, answer)

    def _unreachable(self, exc: BaseException) -> str:
        """Why no byte of a request left: the host's name unknown (DNS), or no connection."""
        if _unresolved(exc):
            name = urllib.parse.urlsplit(self.api_url).hostname
            return (
                f"the host name {name!r} could not be resolved ({_reason(exc)}); check the "
                "api_url setting"
            )
        return f"could not connect to {self.host} ({_reason(exc)})"

    def _exchange(self, prepared: requests.PreparedRequest) -> _Answered:
        """Send, and read the whole answer in one read.

        With `stream=True` the body is read from `response.raw` at once; `requests`'
        own `.content` reads it in 10 kB pieces through a generator, which cost ~25% of
        the client's CPU per request for Leanpay's ~40 kB batch answers. The connection
        goes back to the pool only when the answer was read whole.
        """
        response = self.session.send(
            prepared, timeout=self.timeout, allow_redirects=False, stream=True
        )
        try:
            body = response.raw.read(decode_content=True)
        except BaseException:
            response.close()  # a half-read connection is never reused
            raise
        response.raw.release_conn()
        return _Answered(response.status_code, response.headers, body)

    def _too_many(self, where: str, answer: _Answered, started: float) -> None:
        """A 429, the one place it is handled: slow down (throttle.py) and pause every
        request for its Retry-After (capped), else for the backoff this request's retry
        takes, before its slot is free again: no request starts meanwhile. The retry then
        waits exactly that pause."""
        text = self._scrub(answer.text)
        said = f"{where}: HTTP 429: {quote(text) or '(empty body)'}"
        retry_after = parse_retry_after(answer.headers.get("Retry-After"))
        slowed = self.throttle.too_many(started)
        attempt = getattr(self._attempt, "number", 0)
        wait = _backoff(retry_after, attempt, self.backoff_base, self.max_retry_wait)
        self.throttle.pause(wait)
        raise _Retryable(ApiError(said, status=429, body=text), wait, free=slowed)

    def _classify(self, method: str, where: str, answer: _Answered) -> _Answered:
        status = answer.status
        if status < 300:
            return answer
        if status < 400:
            raise ApiError(
                f"{where}: HTTP {status} redirect to {answer.headers.get('Location')!r}; "
                "check the api_url setting",
                status=status,
            )
        text = self._scrub(answer.text)
        said = f"{where}: HTTP {status}: {quote(text) or '(empty body)'}"
        if status == 404 and not self.api_url.endswith(API_PATH):
            said += (
                f" — there is no such endpoint under {self.api_url}: api_url must end with "
                f"{API_PATH}, as Leanpay's does (https://api.leanpay.fr{API_PATH})"
            )
        if status in (401, 403):
            raise AuthError(
                f"{said} — Leanpay refused the credentials; check the api_key setting",
                status=status,
                body=text,
            )
        retry_after = parse_retry_after(answer.headers.get("Retry-After"))
        if status >= 500 and method in IDEMPOTENT:
            raise _Retryable(ApiError(said, status=status, body=text), retry_after)
        if status >= 500:
            raise Ambiguous(
                f"{said} — Leanpay may have stored the batch before failing",
                status=status,
                body=text,
                retry_after=retry_after,
                answered=status not in GATEWAY_STATUSES,
            )
        if status in ITEM_STATUSES:
            raise ItemsRefused(said, status=status, body=text)
        raise ApiError(said, status=status, body=text)


def _never_sent(exc: BaseException) -> bool:
    """True when the connection failed before any byte of the request left."""
    text = repr(exc)
    return "NewConnectionError" in text or "Failed to establish" in text or _unresolved(exc)


def _unresolved(exc: BaseException) -> bool:
    """True when the host's name could not be resolved (DNS): nothing was sent."""
    text = repr(exc)
    return "NameResolutionError" in text or "Failed to resolve" in text


def _reason(exc: BaseException) -> str:
    """The useful end of a requests/urllib3 error chain (`[Errno 111] Connection refused`)."""
    text = str(exc)
    errno = re.search(r"\[Errno -?\d+\] [^'\")]+", text)
    if errno:
        return errno.group(0).strip()
    if isinstance(exc, requests.Timeout):
        return "timed out"
    for cause in ("RemoteDisconnected", "Connection aborted", "Connection reset", "IncompleteRead"):
        if cause in text:
            return f"connection closed without an answer ({cause})"
    return quote(text or type(exc).__name__, 200)


class DryRunClient:
    """Stands in for `LeanpayClient` in a dry run: writes each POST it would make to a
    file and sends nothing (a dry run needs no key, and reads nothing)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.requests = 0
        self._lock = threading.Lock()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] | None = open(path, "wb")  # noqa: SIM115 - closed by close()

    def post_batch(
        self,
        resource: Resource,
        items: Sequence[dict[str, Any]],
        *,
        on_retry: OnRetry | None = None,
    ) -> list[Created]:
        """Write `{"method", "path", "body"}` as one JSON line, the body byte for byte as a
        real run would send it; answer as if Leanpay created every item."""
        self._write(b"POST", resource.path, encode_batch(resource, items))
        return [Created(externalId=item.get("externalId")) for item in items]

    def put(self, path: str, body: dict[str, Any], *, on_retry: OnRetry | None = None) -> None:
        """Write `{"method": "PUT", "path", "body"}` as one line, as a real run would send."""
        self._write(b"PUT", path, _json_encode(body))

    def _write(self, method: bytes, path: str, body: bytes) -> None:
        line = b'{"method":"%s","path":%s,"body":%s}\n' % (method, _json_encode(path), body)
        with self._lock:
            if self._file is None:
                raise RuntimeError("the dry run is over")
            self._file.write(line)
            self._file.flush()
            self.requests += 1

    def close(self) -> None:
        """Close the output file."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
