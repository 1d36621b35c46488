"""The WSGI application: Leanpay's public API under /v1/public, test controls under /_control.

The API is the one the project's Leanpay API notes describe, as tabled in `api`. Request
order mirrors a NestJS service: route (404), auth guard (401), throttler guard (429, when
a rate limit is set), body validation (400; 409 for refused duplicates), then the
handler (404 for an update naming an unknown id). Fault rules are consulted after the
throttler, so credentials and the rate limit always apply, and before validation, so an
injected 429 or drop does not depend on the batch's content (except reject_items and
partial_refusal, which exist to refuse content, after validation). A body (batch or
update) is parsed before the throttler only so that the journal shows it: a throttled
request gets its 429 even when its body is not JSON.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from leanpay_standin.api import BATCHES, FINDS, LISTS, UPDATES
from leanpay_standin.faults import FaultRule
from leanpay_standin.state import State
from leanpay_standin.store import Conflict
from leanpay_standin.validation import ItemSchema, body_problems, check_body, schema_for

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

API_PREFIX = "/v1/public"
CONTROL_PREFIX = "/_control"
DROP_CONNECTION = "leanpay_standin.drop_connection"
ARRIVED = "leanpay_standin.arrived"
"""Environ key: when the server had the request line and headers (`time.monotonic()`), so
that `latency_ms` covers reading and parsing the body too, as a client sees it."""
"""Environ key the app sets to ask the server to close the connection without answering."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"Unexpected token {name[0]} in JSON")


class Dropped(Response):
    """Not an answer: the server closes the connection instead of sending anything."""

    def __init__(self) -> None:
        super().__init__(b"", status=500)


def _loads(raw: bytes) -> Any:
    """msgspec (10x faster on a 100-invoice body) when it can; what it refuses is judged,
    and its error worded, by json with Node's JSON.parse verdicts (NaN is not JSON)."""
    try:
        return msgspec.json.decode(raw)
    except (msgspec.DecodeError, ValueError):
        return json.loads(raw, parse_constant=_refuse_constant)


_dumps = msgspec.json.encode


def json_response(
    payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A compact JSON response."""
    return Response(
        _dumps(payload),
        status=status,
        headers=dict(headers or {}),
        mimetype="application/json",
    )


def nest_error(status: int, message: str | list[str]) -> Response:
    """An error body the way NestJS writes one."""
    return json_response(
        {"statusCode": status, "message": message, "error": HTTP_STATUS_CODES[status]}, status
    )


def throttled(retry_after: int) -> Response:
    """What NestJS's ThrottlerGuard answers (its exception's message, no "error" key)."""
    return json_response(
        {"statusCode": 429, "message": "ThrottlerException: Too Many Requests"},
        429,
        {"Retry-After": str(retry_after)},
    )


def _api_map() -> Map:
    rules = [Rule(b.path, endpoint=("batch", b.name), methods=["POST"]) for b in BATCHES.values()]
    rules += [Rule(path, endpoint=("list", name), methods=["GET"]) for path, name in LISTS.items()]
    rules += [
        Rule(u.prefix + "<object_id>", endpoint=("update", u.name), methods=["PUT"])
        for u in UPDATES.values()
    ]
    rules += [
        Rule(prefix + "<object_id>", endpoint=("find", name), methods=["GET"])
        for prefix, name in FINDS.items()
    ]
    return Map(rules, strict_slashes=False, merge_slashes=False)


_CONTROL_MAP = Map(
    [
        Rule("/requests", endpoint="requests", methods=["GET"]),
        Rule("/store", endpoint="store", methods=["GET"]),
        Rule("/reset", endpoint="reset", methods=["POST"]),
        Rule("/config", endpoint="config", methods=["GET", "POST"]),
        Rule("/faults", endpoint="faults", methods=["GET", "POST"]),
        Rule("/seed", endpoint="seed", methods=["POST"]),
        Rule("/delete", endpoint="delete", methods=["POST"]),
        Rule("/empty", endpoint="empty", methods=["POST"]),
        Rule("/late", endpoint="late", methods=["POST"]),
        Rule("/reveal", endpoint="reveal", methods=["POST"]),
        Rule("/health", endpoint="health", methods=["GET"]),
    ],
    strict_slashes=False,
)


class StandInApp:
    """Leanpay stand-in as a WSGI callable; all data lives in `state`."""

    def __init__(self, state: State, *, verbose: bool = False) -> None:
        self.state = state
        self.verbose = verbose
        self._api_urls = _api_map().bind("127.0.0.1")
        self._control_urls = _CONTROL_MAP.bind("127.0.0.1")
        self._schemas: dict[str, ItemSchema] = {
            name: schema_for(batch) for name, batch in BATCHES.items()
        }
        self._update_schemas: dict[str, ItemSchema] = {
            name: schema_for(update) for name, update in UPDATES.items()
        }

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        path = request.path
        if path.startswith(API_PREFIX + "/"):
            response = self._api(request, path[len(API_PREFIX) :])
            if isinstance(response, Dropped):
                environ[DROP_CONNECTION] = True
        elif path.startswith(CONTROL_PREFIX + "/"):
            response = self._control(request, path[len(CONTROL_PREFIX) :])
        else:
            response = nest_error(404, f"Cannot {request.method} {path}")
        return response(environ, start_response)

    # -- the Leanpay API -------------------------------------------------------------

    def _api(self, request: Request, path: str) -> Response:
        """Answer one API request and journal it."""
        arrived = request.environ.get(ARRIVED) or time.monotonic()
        entry = self.state.journal.open(
            request.method, path, request.args.to_dict(), dict(request.headers), arrived
        )
        response = self._api_response(request, path, entry)
        # latency_ms is the whole round trip as the client sees it, processing included
        remaining = self.state.settings.latency_ms / 1000 - (time.monotonic() - arrived)
        if remaining > 0:
            self.state.stopping.wait(remaining)
        status = None if isinstance(response, Dropped) else response.status_code
        if self.verbose:
            took = (time.monotonic() - arrived) * 1000
            sys.stderr.write(
                f"{request.method} {API_PREFIX}{path} -> {status or 'dropped'}"
                f" items={entry['items']} {took:.1f}ms\n"
            )
        entry["status"] = status
        entry["answered"] = time.monotonic()  # the server sends (or drops) right after
        return response

    def _api_response(self, request: Request, path: str, entry: dict[str, Any]) -> Response:
        try:
            (kind, resource_name), arguments = self._api_urls.match(path, request.method)
        except HTTPException:
            return nest_error(404, f"Cannot {request.method} {API_PREFIX}{path}")
        if request.headers.get("Authorization") != self.state.api_key:
            return json_response({"statusCode": 401, "message": "Unauthorized"}, 401)

        parsed: Any = None
        items = None
        if kind in ("batch", "update"):
            parsed = self._parse_body(request, entry)
        if kind == "batch":
            items = _batch_items(parsed, BATCHES[resource_name].body_key)
            if items is not None:
                entry["items"] = len(items)
        refusal = self._throttle()
        if refusal is not None:
            return refusal
        if isinstance(parsed, Response):
            return parsed

        page = _page(request) if kind == "list" else None
        rule = self.state.faults.take(request.method, path, items, page)
        if rule is not None:
            rule.hold_until_together()
            early = self._delete_for(rule) or _before_store(rule, self.state.stopping)
            if early is not None:
                return early
        response = self._handle(
            kind, resource_name, request, arguments.get("object_id"), parsed=parsed, rule=rule
        )
        return response if rule is None else _after_store(rule, response, self.state.stopping)

    def _handle(
        self,
        kind: str,
        resource_name: str,
        request: Request,
        object_id: str | None,
        *,
        parsed: Any,
        rule: FaultRule | None,
    ) -> Response:
        """The handler's answer to a request past every guard."""
        if kind == "list":
            return self._list(request, resource_name)
        if object_id is None:
            return self._batch(resource_name, parsed, rule)
        if kind == "find":
            return self._find(resource_name, object_id)
        return self._update(resource_name, object_id, parsed)

    def _delete_for(self, rule: FaultRule) -> Response | None:
        """A delete_before_answer rule's deletion; a 500 if it finds nothing to delete."""
        if rule.action != "delete_before_answer":
            return None
        external_ids = [] if rule.delete_external_id is None else [rule.delete_external_id]
        ids = []
        if rule.delete_which is not None:
            end = self.state.store["invoices"].end(rule.delete_which)
            ids = [] if end is None else [end]
            if end is None:
                return nest_error(500, "fault rule delete_before_answer: no invoice to delete")
        try:
            self.state.delete("invoices", ids, external_ids)
        except ValueError as error:
            return nest_error(500, f"fault rule delete_before_answer: {error}")
        return None

    def _throttle(self) -> Response | None:
        """The 429 of a request the rate limit refuses; None if it may proceed."""
        rate = self.state.settings.rate()
        if rate is None:
            return None
        retry_after = self.state.bucket.take(*rate)
        return None if retry_after is None else throttled(retry_after)

    def _parse_body(self, request: Request, entry: dict[str, Any]) -> Any:
        """The JSON body, journaled; or the 400 Response for unparsable JSON."""
        raw = request.get_data()
        try:
            body = _loads(raw) if raw.strip() else {}
        except (ValueError, RecursionError) as error:
            position = getattr(error, "pos", 0)
            return nest_error(400, f"Unexpected token in JSON at position {position}")
        if self.state.settings.log_bodies:
            entry["body"] = body
        return body

    def _batch(self, resource_name: str, body: Any, rule: FaultRule | None) -> Response:
        schema = self._schemas[resource_name]
        items, problems = check_body(schema, body)
        if problems:
            return nest_error(400, problems)
        if rule is not None and rule.action == "reject_items":
            if rule.name_items:
                return nest_error(
                    400,
                    [
                        f"{schema.body_key}.{index}.{name} refused by test rule"
                        for index, name in rule.offending(items)
                    ],
                )
            return nest_error(400, ["Validation failed"])
        partial = rule if rule is not None and rule.action == "partial_refusal" else None
        if partial is not None:
            items = items[: partial.index]  # stored one by one until the refused item
        result = self.state.store[resource_name].commit(items, self.state.settings.duplicates)
        if isinstance(result, Conflict):
            return nest_error(409, result.messages)
        if partial is not None:
            return nest_error(400, partial.refusal(schema.body_key))
        return json_response({"data": result}, 201)

    def _update(self, resource_name: str, object_id: str, body: Any) -> Response:
        problems = body_problems(self._update_schemas[resource_name], body)
        if problems:
            return nest_error(400, problems)
        updated = self.state.store[resource_name].update(object_id, body)
        if updated is None:
            return _not_found(resource_name, object_id)
        return json_response(updated)

    def _find(self, resource_name: str, object_id: str) -> Response:
        found = self.state.store[resource_name].find(object_id)
        if found is None:
            return _not_found(resource_name, object_id)
        return json_response(self._without_omitted([found])[0])

    def _without_omitted(self, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The objects without the fields the `omit_fields` setting leaves out."""
        omitted = self.state.settings.omit_fields
        for obj in objects if omitted else ():
            for name in omitted:
                obj.pop(name, None)
        return objects

    def _list(self, request: Request, resource_name: str) -> Response:
        page = _page(request)
        if page is None:
            return nest_error(400, ["page must be a positive integer"])
        settings = self.state.settings
        size = settings.page_size
        objects, total = self.state.store[resource_name].page(
            (page - 1) * size, page * size, settings.order
        )
        return json_response(
            {
                "data": self._without_omitted(objects),
                "count": len(objects),
                "total": total,
                "page": page,
                "pageCount": math.ceil(total / size),
            }
        )

    # -- test controls ---------------------------------------------------------------

    def _control(self, request: Request, path: str) -> Response:
        try:
            endpoint, _ = self._control_urls.match(path, request.method)
        except HTTPException as error:
            return json_response({"error": error.name}, error.code or 404)
        payload: Any = None
        if request.method == "POST" and request.get_data().strip():
            try:
                payload = request.get_json(force=True, silent=False)
            except HTTPException:
                return json_response({"error": "body must be JSON"}, 400)
        try:
            return json_response(getattr(self, f"_control_{endpoint}")(request, payload))
        except (ValueError, TypeError) as error:
            return json_response({"error": str(error)}, 400)

    def _control_requests(self, request: Request, payload: Any) -> Any:
        return self.state.journal.entries()

    def _control_store(self, request: Request, payload: Any) -> Any:
        wanted = request.args.get("resource")
        if wanted is not None and wanted not in BATCHES:
            raise ValueError(f"unknown resource {wanted!r}")
        names = [wanted] if wanted else list(BATCHES)
        return {name: self.state.store[name].objects()[0] for name in names}

    def _control_reset(self, request: Request, payload: Any) -> Any:
        self.state.reset()
        return {"reset": True}

    def _control_config(self, request: Request, payload: Any) -> Any:
        if payload is not None:
            self.state.settings.update(_object(payload))
        return self.state.settings.as_json()

    def _control_faults(self, request: Request, payload: Any) -> Any:
        if payload is not None:
            specs = payload.get("faults") if isinstance(payload, dict) else payload
            if not isinstance(specs, list):
                raise ValueError('expected {"faults": [rule, ...]}')
            self.state.faults.add(specs)
        return self.state.faults.describe()

    def _control_seed(self, request: Request, payload: Any) -> Any:
        spec = _object(payload)
        count = spec.get("count", spec.get("n"))
        if type(count) is not int or count < 0:
            raise ValueError("count must be an integer >= 0")
        client_id = spec.get("client_id")
        if client_id is not None and not isinstance(client_id, str):
            raise ValueError("client_id must be a string")
        batch = spec.get("batch")
        if batch is not None and type(batch) is not int:
            raise ValueError("batch must be a positive integer")
        return {"seeded": len(self.state.store.seed_invoices(count, client_id, batch))}

    def _control_delete(self, request: Request, payload: Any) -> Any:
        spec = _object(payload)
        unknown = set(spec) - {"resource", "ids", "externalIds"}
        if unknown:
            raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
        resource_name = spec.get("resource", "invoices")
        ids, external_ids = spec.get("ids", []), spec.get("externalIds", [])
        for key, values in (("ids", ids), ("externalIds", external_ids)):
            if not (isinstance(values, list) and all(isinstance(v, str) for v in values)):
                raise ValueError(f"{key} must be a list of strings")
        if not isinstance(resource_name, str):
            raise ValueError("resource must be a string")
        return {"deleted": self.state.delete(resource_name, ids, external_ids)}

    def _control_empty(self, request: Request, payload: Any) -> Any:
        return {"deleted": self.state.empty_tenant()}

    def _control_late(self, request: Request, payload: Any) -> Any:
        spec = _object(payload)
        if set(spec) != {"invoices"} or not isinstance(spec["invoices"], list):
            raise ValueError('expected {"invoices": [invoice, ...]}')
        return {"data": self.state.store_late(spec["invoices"])}

    def _control_reveal(self, request: Request, payload: Any) -> Any:
        return {"revealed": self.state.reveal_late()}

    def _control_health(self, request: Request, payload: Any) -> Any:
        return {"ok": True}


def _page(request: Request) -> int | None:
    """A list request's page (1 when not given); None if it is no positive integer."""
    raw_page = request.args.get("page", "1")
    if not (raw_page.isascii() and raw_page.isdigit()) or int(raw_page) < 1:
        return None
    return int(raw_page)


def _not_found(resource_name: str, object_id: str) -> Response:
    noun = BATCHES[resource_name].body_key[:-1]  # "invoice", "creditNote", "link", "payback"
    return nest_error(404, f"{noun} {object_id} not found")


def _batch_items(body: Any, body_key: str) -> list[Any] | None:
    """A batch body's item list, if it has one (fault rules match items; the journal counts)."""
    items = body.get(body_key) if type(body) is dict else None
    return items if type(items) is list else None


def _object(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise ValueError("body must be a JSON object")
    return payload


def _before_store(rule: FaultRule, stopping: threading.Event) -> Response | None:
    """Apply the part of a rule that acts before storing; a response ends the request.
    A delay cut short by the server stopping drops the request: nothing is stored after
    a stop."""
    if rule.action == "status":
        return _fault_response(rule)
    if rule.action == "drop_before_store":
        return Dropped()
    if rule.action == "delay_before_store" and stopping.wait(rule.seconds):
        return Dropped()
    return None


def _after_store(rule: FaultRule, response: Response, stopping: threading.Event) -> Response:
    """Apply the part of a rule that acts once the request was processed (a delay ends
    when the server stops)."""
    if rule.action == "status_after_store":
        return _fault_response(rule)
    if rule.action == "drop_after_store":
        return Dropped()
    if rule.action == "delay_after_store":
        stopping.wait(rule.seconds)
    return response


def _fault_response(rule: FaultRule) -> Response:
    if rule.raw_body is not None:
        response = Response(rule.raw_body, status=rule.status, mimetype="text/plain")
        response.headers.update(rule.headers)
        return response
    body = (
        rule.body
        if rule.has_body
        else {"statusCode": rule.status, "message": HTTP_STATUS_CODES.get(rule.status, "Error")}
    )
    return json_response(body, rule.status, rule.headers)
