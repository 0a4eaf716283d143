"""The real anthropic client against the local Messages API stub."""

from __future__ import annotations

import base64
import struct
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from agentd.errors import ExternalError, InvalidArgument
from agentd.llm import (
    DEFAULT_MODEL,
    PLANNER_TOOL,
    AnthropicModel,
    LLMSettings,
    ModelAnswerInvalid,
    ModelRefused,
    ModelUnavailable,
    PlannedCommand,
    make_model,
    redact,
    require_model,
)
from agentd.testing.anthropic_stub import AnthropicStub, Reply, blackhole_server, closed_port_url

API_KEY = "sk-ant-test-key"
SECRET = "Tr0ub4dor&3-admin-password"
METHODS = ("goto", "click", "fill", "select_option", "press")


def tiny_png() -> bytes:
    """Return a valid 1x1 white PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\xff\xff")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


PNG = tiny_png()


@pytest.fixture
def stub() -> Iterator[AnthropicStub]:
    with AnthropicStub(api_key=API_KEY) as server:
        yield server


def settings_for(url: str, *, timeout_s: float = 5.0, max_retries: int = 0) -> LLMSettings:
    return LLMSettings(api_key=API_KEY, base_url=url, timeout_s=timeout_s, max_retries=max_retries)


@pytest.fixture
async def model(stub: AnthropicStub) -> AsyncIterator[AnthropicModel]:
    async with AnthropicModel(settings_for(stub.url)) as client:
        yield client


async def plan(model: AnthropicModel, **overrides: Any) -> PlannedCommand:
    args: dict[str, Any] = {
        "intent": f"Log in as admin with password {SECRET}",
        "allowed_methods": METHODS,
        "screenshot_png": PNG,
        "page_url": "http://127.0.0.1:8080/admin/login",
        "page_outline": f"form#login: input#user, input#password (value {SECRET}), button Save",
        "placeholders": ["{{secret:admin_password}}"],
        "secrets": [SECRET],
    }
    args.update(overrides)
    return await model.plan_step(**args)


def assert_no_secret(stub: AnthropicStub) -> None:
    assert stub.requests, "the stub received nothing"
    for request in stub.requests:
        assert SECRET not in request.text
        assert all(SECRET not in value for value in request.headers.values())


# --- summaries ---------------------------------------------------------------


async def test_summary_returns_the_models_text(stub: AnthropicStub, model: AnthropicModel) -> None:
    stub.push(Reply.text("Acme asked for a discount; follow up Friday."))
    summary = await model.summarize("acme", "2025-01-02 email in: can we get 10% off?")
    assert summary == "Acme asked for a discount; follow up Friday."
    (request,) = stub.requests
    assert request.path == "/v1/messages"
    assert request.body["model"] == DEFAULT_MODEL == "claude-sonnet-4-6"
    assert "revenue-operations" in request.body["system"]
    user = request.body["messages"][0]
    assert user["role"] == "user"
    assert "Account: acme" in user["content"]
    assert "can we get 10% off?" in user["content"]
    assert "tools" not in request.body


async def test_summary_never_sends_a_secret(stub: AnthropicStub, model: AnthropicModel) -> None:
    stub.push(Reply.text("summary"))
    await model.summarize("acme", f"note: the portal password is {SECRET}", secrets=[SECRET])
    assert_no_secret(stub)
    assert "[REDACTED]" in stub.requests[0].text


async def test_summary_refusal(stub: AnthropicStub, model: AnthropicModel) -> None:
    stub.push(Reply.refusal())
    with pytest.raises(ModelRefused, match="declined to summarise account acme"):
        await model.summarize("acme", "text")


@pytest.mark.parametrize("reply", [Reply.text("   "), Reply.tool_use("click", selector="#a")])
async def test_summary_without_text_is_invalid(
    stub: AnthropicStub, model: AnthropicModel, reply: Reply
) -> None:
    stub.push(reply)
    with pytest.raises(ModelAnswerInvalid, match="no summary text"):
        await model.summarize("acme", "text")


# --- step planning -----------------------------------------------------------


async def test_plan_step_happy_path(stub: AnthropicStub, model: AnthropicModel) -> None:
    stub.push(
        Reply.tool_use(
            "fill",
            selector="#password",
            value="{{secret:admin_password}}",
            reason="the password field",
            preamble="I will fill the password field.",
        )
    )
    command = await plan(model)
    assert command == PlannedCommand(
        method="fill",
        selector="#password",
        value="{{secret:admin_password}}",
        reason="the password field",
    )


async def test_plan_step_request_shape(stub: AnthropicStub, model: AnthropicModel) -> None:
    stub.push(Reply.tool_use("click", selector="text=Save"))
    await plan(model, allowed_methods=["click", "fill", "click"])
    body = stub.requests[0].body
    (tool,) = body["tools"]
    assert tool["name"] == PLANNER_TOOL
    assert tool["input_schema"]["properties"]["method"]["enum"] == ["click", "fill"]
    assert tool["input_schema"]["required"] == ["method", "reason"]
    assert body["tool_choice"] == {
        "type": "tool",
        "name": PLANNER_TOOL,
        "disable_parallel_tool_use": True,
    }
    image, text = body["messages"][0]["content"]
    assert image["type"] == "image"
    assert image["source"]["media_type"] == "image/png"
    assert base64.b64decode(image["source"]["data"]) == PNG
    assert text["type"] == "text"
    assert "Step intent: Log in as admin with password [REDACTED]" in text["text"]
    assert "Allowed methods: click, fill" in text["text"]
    assert "{{secret:admin_password}}" in text["text"]
    assert "http://127.0.0.1:8080/admin/login" in text["text"]
    assert_no_secret(stub)


async def test_plan_step_secret_in_url_is_redacted(
    stub: AnthropicStub, model: AnthropicModel
) -> None:
    stub.push(Reply.tool_use("click", selector="#go"))
    await plan(model, page_url=f"http://127.0.0.1:8080/login?token={SECRET}")
    assert_no_secret(stub)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply.refusal("I won't log into accounts."), "declined to plan the step: I won't"),
        (Reply.refusal(""), "declined to plan the step: no explanation given"),
        (Reply.text("The page has no login form."), "prose instead of a command: The page"),
    ],
)
async def test_plan_step_refusal(
    stub: AnthropicStub, model: AnthropicModel, reply: Reply, message: str
) -> None:
    stub.push(reply)
    with pytest.raises(ModelRefused, match=message) as info:
        await plan(model)
    assert isinstance(info.value, ExternalError)


async def test_plan_step_disallowed_method(stub: AnthropicStub, model: AnthropicModel) -> None:
    stub.push(Reply.tool_use("evaluate", value="document.cookie"))
    with pytest.raises(ModelAnswerInvalid, match="method 'evaluate', which is not allowed") as info:
        await plan(model)
    assert info.value.details["method"] == "evaluate"
    assert info.value.details["allowed"] == list(METHODS)


async def test_plan_step_unknown_tool(stub: AnthropicStub, model: AnthropicModel) -> None:
    stub.push(Reply.unknown_tool("run_shell_command"))
    with pytest.raises(ModelAnswerInvalid, match="unknown tool 'run_shell_command'"):
        await plan(model)


@pytest.mark.parametrize(
    ("tool_input", "message"),
    [
        ({}, "has no method"),
        ({"method": 5}, "has no method"),
        ({"method": ""}, "has no method"),
        ({"method": "click", "selector": ["#a"]}, "non-text selector"),
        ({"method": "fill", "selector": "#a", "value": 42}, "non-text value"),
    ],
)
async def test_plan_step_malformed_command(
    stub: AnthropicStub, model: AnthropicModel, tool_input: dict[str, Any], message: str
) -> None:
    stub.push(Reply.tool_use("", tool_input=tool_input))
    with pytest.raises(ModelAnswerInvalid, match=message):
        await plan(model)


async def test_plan_step_reason_is_optional(stub: AnthropicStub, model: AnthropicModel) -> None:
    stub.push(Reply.tool_use("", tool_input={"method": "goto", "value": "http://127.0.0.1/"}))
    assert await plan(model) == PlannedCommand("goto", None, "http://127.0.0.1/", "")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"allowed_methods": []}, "at least one allowed method"),
        ({"screenshot_png": b"GIF89a..."}, "must be a PNG"),
        ({"screenshot_png": PNG + b"\x00" * (4 * 1024 * 1024)}, "the model takes at most"),
    ],
)
async def test_plan_step_bad_arguments(
    stub: AnthropicStub, model: AnthropicModel, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        await plan(model, **overrides)
    assert stub.requests == []


# --- failures of the API -----------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (500, "api_error"),
        (529, "overloaded_error"),
        (429, "rate_limit_error"),
        (400, "invalid_request_error"),
    ],
)
async def test_http_errors_become_external_errors(
    stub: AnthropicStub, model: AnthropicModel, status: int, error_type: str
) -> None:
    stub.push(Reply.error(status, message="something broke"))
    with pytest.raises(ExternalError) as info:
        await plan(model)
    assert type(info.value) is ExternalError
    assert f"HTTP {status} {error_type}: something broke" in str(info.value)
    assert info.value.details["status"] == status
    assert info.value.details["request_id"].startswith("req_")


async def test_wrong_api_key_is_an_external_error(stub: AnthropicStub) -> None:
    settings = LLMSettings(api_key="sk-wrong", base_url=stub.url, max_retries=0, timeout_s=5)
    async with AnthropicModel(settings) as model:
        with pytest.raises(ExternalError, match="HTTP 401 authentication_error"):
            await model.summarize("acme", "text")


async def test_malformed_json(stub: AnthropicStub, model: AnthropicModel) -> None:
    stub.push(Reply.malformed_json())
    with pytest.raises(ExternalError, match="not JSON"):
        await model.summarize("acme", "text")


async def test_retries_are_configurable(stub: AnthropicStub) -> None:
    stub.push(Reply.error(529), Reply.text("second time lucky"))
    async with AnthropicModel(settings_for(stub.url, max_retries=1)) as model:
        assert await model.summarize("acme", "text") == "second time lucky"
    assert len(stub.requests) == 2


async def test_a_hanging_api_times_out(stub: AnthropicStub) -> None:
    stub.push(Reply.hang())
    started = time.monotonic()
    async with AnthropicModel(settings_for(stub.url, timeout_s=0.5)) as model:
        with pytest.raises(ExternalError, match=r"did not answer within 0\.5s") as info:
            await plan(model)
    assert time.monotonic() - started < 3
    assert info.value.details["reason"] == "timeout"


async def test_a_blackhole_times_out() -> None:
    with blackhole_server() as url:
        started = time.monotonic()
        async with AnthropicModel(settings_for(url, timeout_s=0.5)) as model:
            with pytest.raises(ExternalError, match="did not answer within"):
                await model.summarize("acme", "text")
        assert time.monotonic() - started < 3


async def test_connection_refused() -> None:
    started = time.monotonic()
    async with AnthropicModel(settings_for(closed_port_url())) as model:
        with pytest.raises(ExternalError, match="cannot reach the Anthropic API") as info:
            await model.summarize("acme", "text")
    assert info.value.details["reason"] == "connection"
    assert time.monotonic() - started < 3


async def test_unscripted_stub_fails_loudly(stub: AnthropicStub, model: AnthropicModel) -> None:
    with pytest.raises(ExternalError, match="no scripted reply"):
        await model.summarize("acme", "text")


# --- configuration -----------------------------------------------------------


@pytest.mark.parametrize("key", [None, "", "   "])
def test_no_key_means_no_model(key: str | None) -> None:
    settings = LLMSettings(api_key=key)
    assert make_model(settings) is None
    with pytest.raises(ModelUnavailable):
        AnthropicModel(settings)
    with pytest.raises(ModelUnavailable, match="step 'Save product' needs the Anthropic model"):
        require_model(None, "step 'Save product'")


async def test_make_model_with_a_key(stub: AnthropicStub) -> None:
    model = make_model(settings_for(stub.url))
    assert model is not None
    assert require_model(model, "x") is model
    await model.aclose()


def test_settings_repr_hides_the_key() -> None:
    assert API_KEY not in repr(LLMSettings(api_key=API_KEY))


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        ("password hunter2 ok", ["hunter2"], "password [REDACTED] ok"),
        ("hunter2hunter2", ["hunter2"], "[REDACTED][REDACTED]"),
        ("abc abcdef", ["abc", "abcdef"], "[REDACTED] [REDACTED]"),
        ("nothing here", ["hunter2"], "nothing here"),
        ("empty secrets ignored", ["", ""], "empty secrets ignored"),
        ("two a1 b2", ["a1", "b2"], "two [REDACTED] [REDACTED]"),
    ],
)
def test_redact(text: str, secrets: list[str], expected: str) -> None:
    assert redact(text, secrets) == expected
