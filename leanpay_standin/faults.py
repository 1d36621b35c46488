"""Fault-injection rules: how tests make the stand-in misbehave on purpose.

The live Leanpay API documents no errors, rate limits or duplicate semantics, so the
target is tested against every plausible misbehaviour: error statuses, dropped
connections before and after storing (the ambiguous case), slowness, and items refused
for reasons the target cannot check locally. Unknown rule keys are errors, so a typo in
a test cannot silently disable the fault it meant to inject.

A rule is a JSON object: `action`, optionally `path` (e.g. "/invoices/batch"; a segment
written `{…}` matches any one segment, as the API reference writes ids: "/links/{id}"
matches every `/links/<id>`, and `/links/batch` too unless `method` says PUT), `method`,
`page` (only a list request for that page: `GET /invoices?page=3`), `times` (uses
before it wears out; default 1, null = forever; reject_items defaults to forever) and
`together` (true: each request the rule applies to is held on arrival until all `times`
of them have arrived, so that they are on the wire at once whatever the client's timing;
then each goes on with the action; a request is held at most `TOGETHER_SECONDS`, after
which the journal shows they did not overlap), plus the action's own keys:

- `status` (`status`, `headers`, `body` or `raw_body`): answer that instead, storing
  nothing. Without a body: `{"statusCode": <status>, "message": <reason phrase>}`.
- `status_after_store` (same keys): process the request as usual (a valid batch is
  stored, per the duplicate mode), then answer that instead of the real answer: the
  client sees an error for a batch that was in fact stored.
- `drop_before_store` / `drop_after_store`: close the connection without answering,
  before or after processing the request.
- `delay_before_store` / `delay_after_store` (`seconds`): sleep before or after it (cut
  short when the stand-in stops: a request then still waiting to be stored is dropped).
- `reject_items` (`match: {field: [values]}`, `name_items`): answer 400 for a batch
  holding an item whose field has one of the values, naming the items or not.
- `delete_before_answer` (`externalId`, or `which`: "oldest" or "newest" in createdAt
  order): delete that invoice, as someone in Leanpay's UI would at that moment (journaled
  like `POST /_control/delete`, after the request that triggered it), then answer as usual:
  on a list path with `page`, the pages shift under a reader. Nothing to delete: a 500
  saying so (a test's typo must not pass for a deletion).
- `partial_refusal` (`index`, `field`, `message`): a batch import without a transaction
  that checks a business rule while inserting: the valid batch's items before `index`
  (from 0) are stored, then 400 naming that item, `["invoices.<index>.<field> refused
  while inserting by test rule"]` (`field` default "reference"), or `message` as a
  business-rule string. Applies only to a batch holding an item at `index`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

Action = Literal[
    "status",
    "status_after_store",
    "drop_before_store",
    "drop_after_store",
    "delay_before_store",
    "delay_after_store",
    "reject_items",
    "delete_before_answer",
    "partial_refusal",
]
ACTIONS: tuple[str, ...] = get_args(Action)
_UNSET: Any = object()

_COMMON_KEYS = frozenset({"action", "path", "method", "page", "times", "together"})
DELETION_ENDS = ("oldest", "newest")
TOGETHER_SECONDS = 30.0
"""The longest a `together` request waits for the others (a test then fails, not hangs)."""
_PLACEHOLDER = re.compile(r"\{[^/{}]*\}")
_ACTION_KEYS: dict[str, frozenset[str]] = {
    "status": frozenset({"status", "headers", "body", "raw_body"}),
    "status_after_store": frozenset({"status", "headers", "body", "raw_body"}),
    "drop_before_store": frozenset(),
    "drop_after_store": frozenset(),
    "delay_before_store": frozenset({"seconds"}),
    "delay_after_store": frozenset({"seconds"}),
    "reject_items": frozenset({"match", "name_items"}),
    "delete_before_answer": frozenset({"externalId", "which"}),
    "partial_refusal": frozenset({"index", "field", "message"}),
}


@dataclass
class FaultRule:
    """One rule; `times=None` means it never wears out."""

    action: Action
    path: str | None = None
    method: str | None = None
    times: int | None = 1
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = _UNSET
    raw_body: str | None = None
    seconds: float = 0.0
    match: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    name_items: bool = True
    page: int | None = None
    delete_external_id: str | None = None
    delete_which: str | None = None
    """delete_before_answer: the invoice's externalId, or "oldest" / "newest"."""
    index: int = 0
    refused_field: str = "reference"
    message: str | None = None
    """partial_refusal: the refused item, and what the answer names."""
    together: bool = False
    used: int = 0
    arrived: threading.Condition = field(
        default_factory=threading.Condition, repr=False, compare=False
    )
    """Notified on each arrival of a request the rule applies to (`together`)."""
    path_pattern: re.Pattern[str] | None = None
    """`path` as a pattern when it holds `{…}` segments."""

    def applies_to(self, method: str, path: str, page: int | None = None) -> bool:
        """Whether the rule's path, method and page (when given) match the request's."""
        if self.method is not None and self.method != method:
            return False
        if self.page is not None and self.page != page:
            return False
        if self.path_pattern is not None:
            return self.path_pattern.fullmatch(path) is not None
        return self.path is None or self.path == path

    def hold_until_together(self) -> None:
        """With `together`: return once every use of the rule has arrived (`used` is
        counted by `FaultBook.take` before this is called)."""
        if not self.together:
            return
        with self.arrived:
            self.arrived.notify_all()
            self.arrived.wait_for(lambda: self.used >= (self.times or 0), TOGETHER_SECONDS)

    @property
    def active(self) -> bool:
        """Whether the rule may still apply."""
        return self.times is None or self.used < self.times

    @property
    def has_body(self) -> bool:
        """Whether a JSON body was given (null is a body too)."""
        return self.body is not _UNSET

    def offending(self, items: Sequence[object]) -> list[tuple[int, str]]:
        """(index, field) of every item a reject_items rule refuses."""
        found = []
        for index, item in enumerate(items):
            if type(item) is not dict:
                continue
            for name, values in self.match.items():
                if item.get(name, _UNSET) in values:
                    found.append((index, name))
                    break
        return found

    def refusal(self, body_key: str) -> str | list[str]:
        """A partial_refusal's 400 message."""
        if self.message is not None:
            return self.message
        return [
            f"{body_key}.{self.index}.{self.refused_field} refused while inserting by test rule"
        ]

    def describe(self) -> dict[str, Any]:
        """The rule as JSON, for `GET /_control/faults`."""
        described: dict[str, Any] = {
            "action": self.action,
            "path": self.path,
            "method": self.method,
            "times": self.times,
            "used": self.used,
        }
        if self.together:
            described["together"] = True
        if self.action in ("status", "status_after_store"):
            described.update(status=self.status, headers=self.headers)
        elif self.action.startswith("delay"):
            described["seconds"] = self.seconds
        elif self.action == "reject_items":
            described.update(
                match={k: list(v) for k, v in self.match.items()}, name_items=self.name_items
            )
        elif self.action == "delete_before_answer":
            described.update(externalId=self.delete_external_id, which=self.delete_which)
        elif self.action == "partial_refusal":
            described.update(index=self.index, field=self.refused_field, message=self.message)
        if self.page is not None:
            described["page"] = self.page
        return described


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def parse_rule(spec: Mapping[str, Any]) -> FaultRule:
    """Build a rule from its JSON form; ValueError explains what is wrong."""
    _require(isinstance(spec, Mapping), "a fault rule must be an object")
    action: Any = spec.get("action")
    _require(action in ACTIONS, f"fault action must be one of {', '.join(ACTIONS)}")
    unknown = set(spec) - _COMMON_KEYS - _ACTION_KEYS[action]
    _require(not unknown, f"unknown keys for a {action!r} rule: {', '.join(sorted(unknown))}")
    rule = FaultRule(action=action)
    rule.path = _optional_str(spec, "path")
    if rule.path is not None and _PLACEHOLDER.search(rule.path):
        literals = _PLACEHOLDER.split(rule.path)
        rule.path_pattern = re.compile("[^/]+".join(map(re.escape, literals)))
    method = _optional_str(spec, "method")
    rule.method = method.upper() if method else None
    times: Any = spec.get("times", None if action == "reject_items" else 1)
    _require(
        times is None or (type(times) is int and times >= 1),
        "times must be a positive integer or null (unlimited)",
    )
    rule.times = times
    page: Any = spec.get("page")
    _require(page is None or (type(page) is int and page >= 1), "page must be an integer >= 1")
    rule.page = page
    together: Any = spec.get("together", False)
    _require(type(together) is bool, "together must be a boolean")
    _require(
        not together or (times is not None and times >= 2),
        "together needs times >= 2 (how many requests are held until all have arrived)",
    )
    rule.together = together
    if action in ("status", "status_after_store"):
        _parse_status(rule, spec)
    elif action in ("delay_before_store", "delay_after_store"):
        seconds: Any = spec.get("seconds")
        _require(type(seconds) in (int, float) and seconds >= 0, "a delay needs seconds >= 0")
        rule.seconds = float(seconds)
    elif action == "reject_items":
        _parse_reject(rule, spec)
    elif action == "delete_before_answer":
        _parse_deletion(rule, spec)
    elif action == "partial_refusal":
        _parse_partial_refusal(rule, spec)
    return rule


def _parse_partial_refusal(rule: FaultRule, spec: Mapping[str, Any]) -> None:
    index: Any = spec.get("index")
    _require(type(index) is int and index >= 0, "partial_refusal needs index, an integer >= 0")
    rule.index = index
    rule.refused_field = _optional_str(spec, "field") or rule.refused_field
    rule.message = _optional_str(spec, "message")


def _parse_deletion(rule: FaultRule, spec: Mapping[str, Any]) -> None:
    rule.delete_external_id = _optional_str(spec, "externalId")
    which: Any = spec.get("which")
    _require(
        which is None or which in DELETION_ENDS, f"which must be one of {', '.join(DELETION_ENDS)}"
    )
    _require(
        (rule.delete_external_id is None) != (which is None),
        "delete_before_answer needs externalId or which (oldest, newest), not both",
    )
    rule.delete_which = which


def _parse_reject(rule: FaultRule, spec: Mapping[str, Any]) -> None:
    match: Any = spec.get("match")
    _require(
        isinstance(match, Mapping)
        and bool(match)
        and all(isinstance(v, list) for v in match.values()),
        'reject_items needs match: {"<field>": [values, ...]}',
    )
    rule.match = {str(k): tuple(v) for k, v in match.items()}
    name_items: Any = spec.get("name_items", True)
    _require(type(name_items) is bool, "name_items must be a boolean")
    rule.name_items = name_items


def _optional_str(spec: Mapping[str, Any], key: str) -> str | None:
    value = spec.get(key)
    _require(value is None or isinstance(value, str), f"{key} must be a string")
    return cast(str | None, value)


def _parse_status(rule: FaultRule, spec: Mapping[str, Any]) -> None:
    status: Any = spec.get("status")
    _require(type(status) is int and 100 <= status <= 599, "status must be an HTTP status code")
    rule.status = status
    headers: Any = spec.get("headers", {})
    _require(
        isinstance(headers, Mapping) and all(isinstance(v, str) for v in headers.values()),
        "headers must map names to strings",
    )
    rule.headers = {str(k): v for k, v in headers.items()}
    raw_body: Any = spec.get("raw_body")
    _require(raw_body is None or isinstance(raw_body, str), "raw_body must be a string")
    _require(raw_body is None or "body" not in spec, "give body or raw_body, not both")
    rule.raw_body = raw_body
    if "body" in spec:
        rule.body = spec["body"]


class FaultBook:
    """The rules in order of addition; the first active matching rule applies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def add(self, specs: Sequence[Mapping[str, Any]]) -> None:
        """Append rules (all or none: one bad spec adds nothing)."""
        rules = [parse_rule(spec) for spec in specs]
        with self._lock:
            self._rules.extend(rules)

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules = []

    def describe(self) -> list[dict[str, Any]]:
        """Every rule with its use count."""
        with self._lock:
            return [rule.describe() for rule in self._rules]

    def take(
        self,
        method: str,
        path: str,
        items: Sequence[object] | None,
        page: int | None = None,
    ) -> FaultRule | None:
        """Consume one use of the first rule applying to this request, if any.

        A reject_items rule only applies to a batch holding an item it matches, a
        partial_refusal to one holding an item at its index.
        """
        if not self._rules:
            return None
        with self._lock:
            for rule in self._rules:
                if not rule.active:
                    continue
                if not rule.applies_to(method, path, page):
                    continue
                if rule.action == "reject_items" and not (items and rule.offending(items)):
                    continue
                if rule.action == "partial_refusal" and not (items and len(items) > rule.index):
                    continue
                rule.used += 1
                return rule
        return None
