"""Control protocol framing and error codes."""

from __future__ import annotations

import json

import pytest

from agentd import errors, protocol
from agentd.errors import BadRequest, ErrorCode, MessageTooLarge


def test_request_roundtrip() -> None:
    line = protocol.encode_request("status", {"a": 1})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    req = protocol.decode_request(line[:-1])
    assert req.cmd == "status" and req.args == {"a": 1}


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (b"not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1,2]", "JSON object"),
        (b"{}", "'cmd'"),
        (b'{"cmd": 5}', "'cmd'"),
        (b'{"cmd": "Status!"}', "'cmd'"),
        (b'{"cmd": "status", "args": [1]}', "'args'"),
        (b'{"cmd": "status", "extra": 1}', "unknown request fields: extra"),
    ],
)
def test_bad_requests(line: bytes, fragment: str) -> None:
    with pytest.raises(BadRequest, match=fragment.replace("(", r"\(")):
        protocol.decode_request(line)


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        # Python refuses to convert an integer of more than 4,300 digits (ValueError).
        (b'{"cmd": "status", "args": {"n": ' + b"9" * 5000 + b"}}", "4300 digits"),
        # Deeper than the parser's recursion limit (RecursionError).
        (b'{"cmd": "status", "args": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}", "deep"),
        # Parses, but deeper than any request needs.
        (b'{"cmd": "status", "args": {"a": ' + b"[" * 70 + b"]" * 70 + b"}}", "64 levels"),
        (b'{"cmd": "status", "args": {"a": ' + b'{"k":' * 70 + b"1" + b"}" * 70 + b"}}", "64"),
    ],
)
def test_hostile_requests_are_bad_requests(line: bytes, fragment: str) -> None:
    with pytest.raises(BadRequest, match=fragment) as info:
        protocol.decode_request(line)
    assert "\n" not in info.value.message and len(info.value.message) < 300


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = "[[[{{" * 40 + '\\"' + "]]" * 40
    req = protocol.decode_request(json.dumps({"cmd": "status", "args": {"a": text}}).encode())
    assert req.args == {"a": text}
    nested = {"cmd": "status", "args": {"a": [[[[["x"]]]]] * 100}}
    assert protocol.decode_request(json.dumps(nested).encode()).args == nested["args"]


def test_responses_with_huge_numbers_are_protocol_errors() -> None:
    with pytest.raises(BadRequest, match="not valid JSON"):
        protocol.decode_response(b'{"ok": true, "result": ' + b"1" * 5000 + b"}")


def test_null_args_mean_empty() -> None:
    assert protocol.decode_request(b'{"cmd":"ping","args":null}').args == {}


def test_line_buffer_splits_and_keeps_rest() -> None:
    buf = protocol.LineBuffer(100)
    assert buf.feed(b'{"a":1}\n{"b"') == [b'{"a":1}']
    assert buf.pending == 4
    assert buf.feed(b":2}\n") == [b'{"b":2}']
    assert buf.pending == 0


def test_line_buffer_limit_without_newline() -> None:
    buf = protocol.LineBuffer(10)
    buf.feed(b"x" * 10)
    with pytest.raises(MessageTooLarge):
        buf.feed(b"y")


def test_line_buffer_limit_with_newline() -> None:
    buf = protocol.LineBuffer(10)
    with pytest.raises(MessageTooLarge):
        buf.feed(b"x" * 11 + b"\n")
    assert protocol.LineBuffer(10).feed(b"x" * 10 + b"\n") == [b"x" * 10]


def test_error_line_carries_code_and_name() -> None:
    obj = json.loads(protocol.error(errors.NotFound("no such intent", details={"id": "x"})))
    assert obj == {
        "ok": False,
        "error": {
            "code": 30,
            "name": "NOT_FOUND",
            "message": "no such intent",
            "details": {"id": "x"},
        },
    }


def test_decode_response_rejects_garbage() -> None:
    with pytest.raises(BadRequest):
        protocol.decode_response(b'{"hello": 1}')
    assert protocol.decode_response(protocol.ok({"x": 1})[:-1]) == {"ok": True, "result": {"x": 1}}
    assert protocol.decode_response(protocol.event(3)[:-1]) == {"event": 3}


# Codes are public: scripts depend on them. Changing one must fail a test.
STABLE = {
    "BAD_REQUEST": 10,
    "UNKNOWN_COMMAND": 11,
    "MESSAGE_TOO_LARGE": 12,
    "REQUEST_TIMEOUT": 13,
    "INVALID_ARGUMENT": 14,
    "PERMISSION_DENIED": 20,
    "NOT_FOUND": 30,
    "ALREADY_EXISTS": 31,
    "CONFLICT": 32,
    "INVALID_STATE": 33,
    "EXPIRED": 34,
    "POLICY_REFUSED": 50,
    "BLOCKED_INTENT": 51,
    "BUDGET_EXHAUSTED": 52,
    "KILL_SWITCH_ON": 53,
    "NO_EXECUTOR": 54,
    "CONSENT_MISSING": 55,
    "CONFIG_INVALID": 70,
    "VAULT_ERROR": 71,
    "STORE_ERROR": 72,
    "EXTERNAL_ERROR": 73,
    "STALE_KNOWLEDGE_BASE": 74,
    "INTERNAL": 90,
    "SHUTTING_DOWN": 91,
    "BUSY": 92,
}


@pytest.mark.parametrize(("name", "code"), sorted(STABLE.items()))
def test_error_codes_are_stable(name: str, code: int) -> None:
    assert ErrorCode[name] == code


def test_every_code_is_pinned() -> None:
    assert {c.name for c in ErrorCode} == set(STABLE)


@pytest.mark.parametrize("code", list(ErrorCode))
def test_error_roundtrip_keeps_class_and_code(code: ErrorCode) -> None:
    rebuilt = errors.from_dict({"code": int(code), "message": "m"})
    assert rebuilt.code == code and rebuilt.message == "m"


def test_unknown_code_from_newer_daemon() -> None:
    rebuilt = errors.from_dict({"code": 999, "message": "m"})
    assert isinstance(rebuilt, errors.AgentdError) and rebuilt.code == ErrorCode.INTERNAL
