"""Action intents: what the agent wants to do, validated and given a stable id.

An intent is the unit the gate decides on. Its id is derived from its content
so that the same intent submitted twice (a planner re-running, an operator
re-sending a file) is recognised as the same intent and never decided, budgeted
or executed twice.

The id deliberately leaves out ``confidence``: a planner's estimate may wobble
between two runs of the same plan, and that must not turn one intent into two.
The first submission's confidence is the one that stands.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from agentd.errors import InvalidArgument

IDENTIFIER_RE = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,63}$")
ACTION_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# Domains are written upper-case in the tables (SEO, ADS); any case is accepted.
DOMAIN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
# Derived ids look like ``int_<24 hex>``; explicit ids may be any such token.
INTENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
DERIVED_ID_RE = re.compile(r"^int_[0-9a-f]{24}$")

MAX_RATIONALE_CHARS = 2000
MAX_DIFF_BYTES = 64 * 1024
MAX_SERVES_BYTES = 8 * 1024
MAX_JSON_DEPTH = 32

_ID_SCHEME = "agentd.intent.v1"
_DERIVED_PREFIX = "int_"
_FIELDS = frozenset(
    {
        "intent_id",
        "tenant",
        "account",
        "action_type",
        "domain",
        "change_type",
        "diff",
        "rationale",
        "confidence",
        "source",
        "serves",
    }
)


class IntentSource(StrEnum):
    """Who asked for an intent."""

    PLANNER = "planner"
    OPERATOR = "operator"
    GOVERNANCE = "governance"


@dataclass(frozen=True)
class ActionIntent:
    """One thing the agent wants to do, as the gate sees it.

    Build one with :func:`make_intent` or :func:`parse_intent`; both validate
    and normalise. ``diff`` and ``serves`` are JSON objects; ``serves`` names
    what the intent is for (pattern or goal references) and may be empty.
    """

    intent_id: str
    tenant: str
    account: str
    action_type: str
    domain: str | None = None
    change_type: str | None = None
    diff: Mapping[str, Any] = field(default_factory=dict, hash=False)
    rationale: str = ""
    confidence: float | None = None
    source: IntentSource = IntentSource.PLANNER
    serves: Mapping[str, Any] = field(default_factory=dict, hash=False)
    # content_fingerprint(), kept once known: it covers only frozen fields
    # (diff and serves are the intent's own copies, never written to).
    _fingerprint: str | None = field(default=None, init=False, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form, which :func:`parse_intent` reads back."""
        return {
            "intent_id": self.intent_id,
            "tenant": self.tenant,
            "account": self.account,
            "action_type": self.action_type,
            "domain": self.domain,
            "change_type": self.change_type,
            "diff": _plain(self.diff),
            "rationale": self.rationale,
            "confidence": self.confidence,
            "source": str(self.source),
            "serves": _plain(self.serves),
        }


def _bad(field_name: str, message: str) -> InvalidArgument:
    return InvalidArgument(f"{field_name}: {message}", details={"field": field_name})


def _plain(value: Any) -> Any:
    """Return a deep copy made of dicts and lists only."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _check_json(value: Any, field_name: str, depth: int = 0) -> None:
    if depth > MAX_JSON_DEPTH:
        raise _bad(field_name, f"nested deeper than {MAX_JSON_DEPTH} levels")
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _bad(field_name, "numbers must be finite (no NaN or Infinity)")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _bad(field_name, f"object keys must be strings, got {key!r}")
            _check_json(item, field_name, depth + 1)
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_json(item, field_name, depth + 1)
        return
    raise _bad(field_name, f"{type(value).__name__} is not a JSON value")


def _json_object(value: Any, field_name: str, max_bytes: int) -> dict[str, Any]:
    if value is None or (type(value) is dict and not value):
        return {}
    if not isinstance(value, Mapping):
        raise _bad(field_name, f"must be a JSON object, got {type(value).__name__}")
    _check_json(value, field_name)
    plain: dict[str, Any] = _plain(value)
    size = len(canonical_json(plain).encode("utf-8"))
    if size > max_bytes:
        raise _bad(field_name, f"is {size} bytes of JSON; the limit is {max_bytes}")
    return plain


def _identifier(value: Any, field_name: str, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str):
        raise _bad(field_name, f"must be a string, got {type(value).__name__}")
    if not pattern.fullmatch(value):
        raise _bad(field_name, f"{value!r} does not match {pattern.pattern}")
    return value


_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(value: Any) -> str:
    """Return the one JSON spelling of ``value`` used for ids and fingerprints."""
    # The same as json.dumps with these options, without building an encoder per call.
    return _CANONICAL.encode(value)


def validate_intent_fields(intent: ActionIntent) -> ActionIntent:
    """Check every field of ``intent`` and return a normalised copy.

    Normalising upper-cases the domain, coerces ``source`` and ``confidence``
    and copies ``diff``/``serves`` into plain dicts. An empty ``intent_id`` is
    replaced by :func:`derive_intent_id`.

    :raises InvalidArgument: naming the bad field in ``details["field"]``.
    """
    tenant = _identifier(intent.tenant, "tenant", IDENTIFIER_RE)
    account = _identifier(intent.account, "account", IDENTIFIER_RE)
    action_type = _identifier(intent.action_type, "action_type", ACTION_TYPE_RE)
    domain = None
    if intent.domain is not None:
        domain = _identifier(intent.domain, "domain", DOMAIN_RE).upper()
    change_type = None
    if intent.change_type is not None:
        change_type = _identifier(intent.change_type, "change_type", IDENTIFIER_RE)
        # Forbidden change types are listed per domain: without one, the
        # forbidden check could not see the change at all.
        if domain is None:
            raise _bad("domain", "is required when change_type is given")
    confidence = intent.confidence
    if confidence is not None:
        if isinstance(confidence, bool) or not isinstance(confidence, int | float):
            raise _bad("confidence", f"must be a number, got {type(confidence).__name__}")
        if not (0.0 <= confidence <= 1.0):  # also rejects NaN
            raise _bad("confidence", f"{confidence!r} is not between 0 and 1")
        confidence = float(confidence)
    if not isinstance(intent.rationale, str):
        raise _bad("rationale", f"must be a string, got {type(intent.rationale).__name__}")
    if len(intent.rationale) > MAX_RATIONALE_CHARS:
        raise _bad("rationale", f"is {len(intent.rationale)} characters; the limit is 2000")
    try:
        source = IntentSource(intent.source)
    except ValueError:
        allowed = ", ".join(s.value for s in IntentSource)
        raise _bad("source", f"{intent.source!r} is not one of {allowed}") from None
    diff = _json_object(intent.diff, "diff", MAX_DIFF_BYTES)
    serves = _json_object(intent.serves, "serves", MAX_SERVES_BYTES)
    fingerprint = _fingerprint(
        _content_of(
            tenant,
            account,
            action_type,
            domain,
            change_type,
            diff,
            intent.rationale,
            source,
            serves,
        )
    )
    if intent.intent_id == "":
        intent_id = _DERIVED_PREFIX + fingerprint[:24]
    else:
        intent_id = _identifier(intent.intent_id, "intent_id", INTENT_ID_RE)
    normal = ActionIntent(
        intent_id=intent_id,
        tenant=tenant,
        account=account,
        action_type=action_type,
        domain=domain,
        change_type=change_type,
        diff=diff,
        rationale=intent.rationale,
        confidence=confidence,
        source=source,
        serves=serves,
    )
    object.__setattr__(normal, "_fingerprint", fingerprint)
    return normal


def _content_of(
    tenant: str,
    account: str,
    action_type: str,
    domain: str | None,
    change_type: str | None,
    diff: Mapping[str, Any],
    rationale: str,
    source: IntentSource,
    serves: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "scheme": _ID_SCHEME,
        "tenant": tenant,
        "account": account,
        "action_type": action_type,
        "domain": domain,
        "change_type": change_type,
        "diff": _plain(diff),
        "rationale": rationale,
        "source": str(source),
        "serves": _plain(serves),
    }


def _fingerprint(content: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def content_fingerprint(intent: ActionIntent) -> str:
    """Return the sha256 (hex) of the intent's content, without id or confidence.

    Two submissions under one id with different fingerprints mean the id was
    reused for a different intent: the caller should refuse the second.
    """
    # Validation computes it already (for the derived id); the gate asks again.
    known = intent._fingerprint
    if known is not None:
        return known
    fingerprint = _fingerprint(
        _content_of(
            intent.tenant,
            intent.account,
            intent.action_type,
            intent.domain,
            intent.change_type,
            intent.diff,
            intent.rationale,
            intent.source,
            intent.serves,
        )
    )
    object.__setattr__(intent, "_fingerprint", fingerprint)
    return fingerprint


def derive_intent_id(intent: ActionIntent) -> str:
    """Return the content-derived id ``int_<24 hex>`` of a normalised intent.

    Covers tenant, account, action type, domain, change type, diff, rationale,
    source and serves; ignores ``intent_id`` and ``confidence``.
    """
    return _DERIVED_PREFIX + content_fingerprint(intent)[:24]


def make_intent(
    *,
    tenant: str,
    account: str,
    action_type: str,
    domain: str | None = None,
    change_type: str | None = None,
    diff: Mapping[str, Any] | None = None,
    rationale: str = "",
    confidence: float | None = None,
    source: IntentSource | str = IntentSource.PLANNER,
    serves: Mapping[str, Any] | None = None,
    intent_id: str | None = None,
) -> ActionIntent:
    """Validate the fields and build an intent, deriving its id unless given.

    :raises InvalidArgument: naming the bad field in ``details["field"]``.
    """
    raw = ActionIntent(
        intent_id=intent_id if intent_id is not None else "",
        tenant=tenant,
        account=account,
        action_type=action_type,
        domain=domain,
        change_type=change_type,
        diff=diff if diff is not None else {},
        rationale=rationale,
        confidence=confidence,
        source=source,  # type: ignore[arg-type]  # coerced by validation
        serves=serves if serves is not None else {},
    )
    if intent_id == "":
        raise _bad("intent_id", "must not be empty (omit it to derive one)")
    return validate_intent_fields(raw)


def parse_intent(
    obj: Mapping[str, Any], *, default_source: IntentSource = IntentSource.OPERATOR
) -> ActionIntent:
    """Build an intent from one decoded JSON/JSONL object.

    ``diff`` may be an object or a string holding a JSON object. ``source``
    defaults to ``default_source``; ``intent_id`` is derived when absent.
    Unknown keys are refused so that a misspelt field is not silently lost.

    :raises InvalidArgument: naming the bad field in ``details["field"]``.
    """
    if not isinstance(obj, Mapping):
        raise _bad("intent", f"must be a JSON object, got {type(obj).__name__}")
    for key in obj:
        if key not in _FIELDS:
            raise _bad(str(key), "is not an intent field")
    for key in ("tenant", "account", "action_type"):
        if obj.get(key) is None:
            raise _bad(key, "is required")
    diff: Any = obj.get("diff")
    if isinstance(diff, str):
        try:
            diff = json.loads(diff)
        except json.JSONDecodeError as exc:
            raise _bad("diff", f"is not valid JSON ({exc.msg} at position {exc.pos})") from None
    rationale = obj.get("rationale")
    source = obj.get("source")
    intent_id = obj.get("intent_id")
    if intent_id is not None and not isinstance(intent_id, str):
        raise _bad("intent_id", f"must be a string, got {type(intent_id).__name__}")
    return make_intent(
        tenant=obj["tenant"],
        account=obj["account"],
        action_type=obj["action_type"],
        domain=obj.get("domain"),
        change_type=obj.get("change_type"),
        diff=diff,
        rationale="" if rationale is None else rationale,
        confidence=obj.get("confidence"),
        source=default_source if source is None else source,
        serves=obj.get("serves"),
        intent_id=intent_id,
    )
