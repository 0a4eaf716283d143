"""The knowledge-base extractor and registry loader (agentd.kb)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agentd.errors import ConfigInvalid, InvalidArgument, NotFound, StaleKnowledgeBase
from agentd.kb import (
    ALLOWED_ACTIONS,
    Action,
    Step,
    Workflow,
    bind_account,
    build_knowledge_base,
    load_knowledge_base,
    main_build,
    main_check,
    substitute,
)

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

GOOD = '''\
"""Synthetic workflow file."""
from workflows.steps import step


def helper():
    return 1


def test_rename_widget(run):
    """Rename widget {widget_id}."""
    run.bind(widget_id="7", name="New name")
    step(run, intent="Open sign-in", action="goto", target="/login", expect="Sign in")
    step(run, intent="User", action="fill", target="#user", value="{secret:user}")
    step(run, intent="Password", action="fill", target="#password", value="{secret:password}")
    step(run, intent="Open widget", action="goto", target="/widgets/{widget_id}")
    before = step(run, intent="Old name", action="extract", target="#name", result="old_name")
    step(run, intent="New name", action="fill", target="#name", value="{name}")
    step(run, intent="Save", action="click", target="#save", expect="Saved {name}")
    assert before


def test_not_a_workflow(run):
    """No steps here."""
    assert run
'''


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_build_extracts_steps_parameters_secrets_and_sources(tmp_path: Path) -> None:
    wf_dir, out = tmp_path / "workflows", tmp_path / "kb" / "AGENT_KNOWLEDGE_BASE.json"
    source = write(wf_dir, "test_widgets.py", GOOD)
    write(wf_dir, "conftest.py", "# fixtures are not a source\n")

    kb = build_knowledge_base(wf_dir, out, now=NOW)

    assert kb.names == ("rename_widget",)
    wf = kb.workflow("rename_widget")
    assert wf.description == "Rename widget {widget_id}."
    assert wf.parameters == ("widget_id", "name")
    assert wf.secrets == ("user", "password")
    assert wf.results == ("old_name",)
    assert [s.action for s in wf.steps] == [
        "goto",
        "fill",
        "fill",
        "goto",
        "extract",
        "fill",
        "click",
    ]
    assert wf.steps[4] == Step(5, "Old name", Action.EXTRACT, "#name", None, None, "old_name", 16)
    assert kb.sources == {"test_widgets.py": hashlib.sha256(source.read_bytes()).hexdigest()}
    data = json.loads(out.read_text())
    assert data["generated_at"] == "2025-03-01T12:00:00+00:00"
    assert data["workflows"]["rename_widget"]["steps"][6]["expect"] == "Saved {name}"
    assert out.read_text() == json.dumps(data, indent=2, sort_keys=True) + "\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["AGENT_KNOWLEDGE_BASE.json"]


def test_built_knowledge_base_loads_back_equal(tmp_path: Path) -> None:
    wf_dir, out = tmp_path / "workflows", tmp_path / "kb.json"
    write(wf_dir, "test_widgets.py", GOOD)
    built = build_knowledge_base(wf_dir, out, now=NOW)
    assert load_knowledge_base(out, wf_dir) == built


def step_file(call: str, *, docstring: str = '"""Do it."""') -> str:
    return f"def test_task(run):\n    {docstring}\n    {call}\n"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            'step(run, intent="x", action="evaluate", target="#a")',
            "action 'evaluate' is not allowed",
        ),
        ('step(run, intent="x", action="click")', "click step has no target"),
        ('step(run, intent="x", action="click", target="")', "click step has no target"),
        ('step(run, action="click", target="#a")', "step has no intent"),
        ('step(run, intent="x", action="fill", target="#a")', "fill step needs a value"),
        ('step(run, intent="x", action="press", target="#a")', "press step needs a value"),
        ('step(run, intent="x", action="extract", target="#a")', "extract step needs a result"),
        ('step(run, intent="x", action="click", target="#a", result="r")', "only extract steps"),
        ('step(run, intent="x", action="expect_text", target="#a")', "needs an expect text"),
        ('step(run, intent="x", action="click", target=SEL)', "'target' must be a literal string"),
        (
            'step(run, intent="x", action="click", target="#a", timeout="1")',
            "unknown step argument",
        ),
        ('step(intent="x", action="click", target="#a")', "only positional argument"),
        ('step(run, intent="x", action="click", target="#{secret:pw}")', "not in target"),
        ('step(run, intent="x", action="goto", target="https://evil.example/")', "must be a path"),
        ('step(run, intent="x", action="goto", target="//evil.example/")', "must be a path"),
        (
            'step(run, intent="x", action="select_option", target="#a", value="{secret:pw}")',
            "only be used as a fill value",
        ),
        (
            'step(run, intent="x", action="fill", target="#password", value="hunter2")',
            "a password must come from the vault",
        ),
        ('for _ in range(2): step(run, intent="x", action="click", target="#a")', "not nested"),
        ('step(run, intent="x", action="goto", target="/a |> body")', "has no frames"),
        ('step(run, intent="x", action="fill", target="#f |> ", value="v")', "an empty selector"),
    ],
)
def test_bad_step_is_rejected_with_file_and_line(tmp_path: Path, call: str, message: str) -> None:
    write(tmp_path / "wf", "test_bad.py", step_file(call))
    with pytest.raises(InvalidArgument) as err:
        build_knowledge_base(tmp_path / "wf", tmp_path / "kb.json")
    assert "test_bad.py:3: " in err.value.message
    assert message in err.value.message
    assert not (tmp_path / "kb.json").exists()


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    write(
        tmp_path / "wf",
        "test_a.py",
        step_file('step(run, intent="x", action="hover", target="#a")'),
    )
    write(tmp_path / "wf", "test_b.py", step_file('step(run, intent="x", action="click")'))
    with pytest.raises(InvalidArgument) as err:
        build_knowledge_base(tmp_path / "wf", tmp_path / "kb.json")
    assert [p.split(":")[0] for p in err.value.details["problems"]] == ["test_a.py", "test_b.py"]


@pytest.mark.parametrize(
    ("files", "error", "message"),
    [
        ({}, InvalidArgument, "no workflows found"),
        ({"test_a.py": "def test_a(:\n"}, InvalidArgument, "test_a.py:1: cannot parse"),
        (
            {
                "test_a.py": step_file(
                    'step(run, intent="x", action="click", target="#a")', docstring="pass"
                )
            },
            InvalidArgument,
            "test_task needs a docstring",
        ),
        (
            {
                "test_a.py": step_file('step(run, intent="x", action="click", target="#a")'),
                "test_b.py": step_file('step(run, intent="y", action="click", target="#b")'),
            },
            InvalidArgument,
            "workflow 'task' is also defined in test_a.py",
        ),
    ],
)
def test_unusable_workflow_folder_is_refused(
    tmp_path: Path, files: dict[str, str], error: type[Exception], message: str
) -> None:
    (tmp_path / "wf").mkdir()
    for name, text in files.items():
        write(tmp_path / "wf", name, text)
    with pytest.raises(error, match=message):
        build_knowledge_base(tmp_path / "wf", tmp_path / "kb.json")


def test_missing_workflows_folder_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        build_knowledge_base(tmp_path / "nope", tmp_path / "kb.json")


@pytest.mark.parametrize(
    ("change", "kind", "file"),
    [
        ("edit", "changed", "test_widgets.py"),
        ("add", "added", "test_more.py"),
        ("remove", "removed", "test_widgets.py"),
    ],
)
def test_stale_knowledge_base_is_refused(tmp_path: Path, change: str, kind: str, file: str) -> None:
    wf_dir, out = tmp_path / "workflows", tmp_path / "kb.json"
    source = write(wf_dir, "test_widgets.py", GOOD)
    write(wf_dir, "test_other.py", step_file('step(run, intent="x", action="click", target="#a")'))
    build_knowledge_base(wf_dir, out)
    if change == "edit":
        source.write_text(GOOD.replace("#save", "#save-button"))
    elif change == "add":
        write(wf_dir, "test_more.py", "def test_nothing():\n    pass\n")
    else:
        source.unlink()

    with pytest.raises(StaleKnowledgeBase) as err:
        load_knowledge_base(out, wf_dir)

    assert err.value.details[kind] == [file]
    assert f"{kind}: workflows/{file}" in err.value.message
    assert "agentd kb build" in err.value.message
    assert load_knowledge_base(out).names  # without a folder to compare, it still loads


def test_helper_files_do_not_make_the_knowledge_base_stale(tmp_path: Path) -> None:
    wf_dir, out = tmp_path / "workflows", tmp_path / "kb.json"
    write(wf_dir, "test_widgets.py", GOOD)
    build_knowledge_base(wf_dir, out)
    write(wf_dir, "conftest.py", "# changed\n")
    assert load_knowledge_base(out, wf_dir).names == ("rename_widget",)


def _tamper(data: dict[str, Any], path: str, value: object) -> None:
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is KeyError:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("format_version", 99, "format 99"),
        ("workflows", KeyError, "kb.workflows is missing"),
        ("sources", [], "kb.sources has the wrong type"),
        ("workflows.rename_widget.steps.0.action", "evaluate", "'evaluate' is not an allowed"),
        ("workflows.rename_widget.steps.0.target", "", "step has no target"),
        ("workflows.rename_widget.steps.4.result", None, "extract step needs a result"),
        ("workflows.rename_widget.steps.0.index", "1", "index has the wrong type"),
        ("workflows.rename_widget.steps", [], "has no steps"),
        ("workflows.rename_widget.secrets", "user", "secrets has the wrong type"),
    ],
)
def test_malformed_knowledge_base_is_refused(
    tmp_path: Path, path: str, value: object, message: str
) -> None:
    wf_dir, out = tmp_path / "workflows", tmp_path / "kb.json"
    write(wf_dir, "test_widgets.py", GOOD)
    build_knowledge_base(wf_dir, out)
    data = json.loads(out.read_text())
    _tamper(data, path, value)
    out.write_text(json.dumps(data))
    with pytest.raises(ConfigInvalid) as err:
        load_knowledge_base(out, wf_dir)
    assert message in err.value.message
    assert "agentd kb build" in err.value.message


@pytest.mark.parametrize("text", ["", "{not json", "[]", '"a string"'])
def test_unreadable_knowledge_base_is_refused(tmp_path: Path, text: str) -> None:
    (tmp_path / "kb.json").write_text(text)
    with pytest.raises(ConfigInvalid, match=r"kb\.json"):
        load_knowledge_base(tmp_path / "kb.json")


def test_missing_knowledge_base_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="agentd kb build"):
        load_knowledge_base(tmp_path / "absent.json")


def test_unknown_workflow_is_not_found(tmp_path: Path) -> None:
    write(tmp_path / "wf", "test_widgets.py", GOOD)
    kb = build_knowledge_base(tmp_path / "wf", tmp_path / "kb.json")
    with pytest.raises(NotFound, match=r"'delete_everything'.*known: rename_widget"):
        kb.workflow("delete_everything")


@pytest.mark.parametrize(
    ("text", "params", "expected"),
    [
        ("/products/{id}/edit", {"id": "7"}, "/products/7/edit"),
        ("{a}-{b}-{a}", {"a": "x", "b": "y"}, "x-y-x"),
        ("no placeholders {}", {}, "no placeholders {}"),
        ('[data-testid="x"]', {}, '[data-testid="x"]'),
        ("{secret:pw}", {}, "s3cret"),
    ],
)
def test_substitute(text: str, params: dict[str, str], expected: str) -> None:
    assert substitute(text, params, {"pw": "s3cret"}) == expected


@pytest.mark.parametrize(
    ("text", "missing"), [("{id}", "parameter 'id'"), ("{secret:pw}", "secret 'pw'")]
)
def test_substitute_missing_value(text: str, missing: str) -> None:
    with pytest.raises(InvalidArgument, match=missing):
        substitute(text, {}, {})


def test_render_fills_secrets_only_in_values() -> None:
    step = Step(1, "Password", Action.FILL, "#pw-{form}", "{secret:pw}", None, None, 3)
    rendered = step.render({"form": "login"}, {"pw": "s3cret"})
    assert (rendered.target, rendered.value) == ("#pw-login", "s3cret")
    assert step.value == "{secret:pw}"  # the template, safe to audit, is unchanged


@pytest.mark.parametrize(
    ("value", "target"),
    [
        ("globex", "/crm/accounts/globex/notes/new"),
        ("../globex", "/crm/accounts/..%2Fglobex/notes/new"),
        ("a/b?c=1#d", "/crm/accounts/a%2Fb%3Fc%3D1%23d/notes/new"),
        ("%2e%2e", "/crm/accounts/%252e%252e/notes/new"),
        ("caf\u00e9 x", "/crm/accounts/caf%C3%A9%20x/notes/new"),
    ],
)
def test_a_parameter_in_a_url_is_one_encoded_path_segment(value: str, target: str) -> None:
    for action in (Action.GOTO, Action.EXPECT_URL):
        step = Step(1, "Open", action, "/crm/accounts/{account}/notes/new")
        assert step.render({"account": value}, {}).target == target


@pytest.mark.parametrize("value", ["", ".", ".."])
def test_a_parameter_that_would_name_another_page_is_refused(value: str) -> None:
    step = Step(1, "Open", Action.GOTO, "/crm/accounts/{account}")
    with pytest.raises(InvalidArgument, match="goes into a URL path") as err:
        step.render({"account": value}, {})
    assert err.value.details == {"parameter": "account"}


@pytest.mark.parametrize("value", ['2"], [data-testid="revoke-key-3', "2 *", "2,body", "a>b", ""])
def test_a_parameter_in_a_selector_is_a_plain_name(value: str) -> None:
    step = Step(1, "Revoke", Action.CLICK, '[data-testid="revoke-key-{key_id}"]')
    assert step.render({"key_id": "k_2-b"}, {}).target == '[data-testid="revoke-key-k_2-b"]'
    with pytest.raises(InvalidArgument, match="goes into a selector"):
        step.render({"key_id": value}, {})


def test_values_expectations_and_dialog_texts_take_parameters_as_they_are() -> None:
    text = 'He said "hi" / 50% off [x]'
    fill = Step(1, "Write", Action.FILL, "#note", "{note}", "{note}")
    dialog = Step(2, "Confirm", Action.ACCEPT_DIALOG, "Delete {note}?")
    assert fill.render({"note": text}, {}).value == text
    assert fill.render({"note": text}, {}).expect == text
    assert dialog.render({"note": text}, {}).target == f"Delete {text}?"


def test_check_parameters_checks_where_each_value_goes() -> None:
    steps = (
        Step(1, "Open", Action.GOTO, "/keys/{key_id}"),
        Step(2, "Revoke", Action.CLICK, '[data-testid="revoke-{key_id}"]'),
    )
    wf = Workflow("revoke", "d", "s", ("key_id",), (), steps)
    wf.check_parameters({"key_id": "42"})
    with pytest.raises(InvalidArgument, match="goes into a selector"):
        wf.check_parameters({"key_id": "4 2"})
    with pytest.raises(InvalidArgument, match="goes into a URL path"):
        wf.check_parameters({"key_id": ".."})


def test_the_account_parameter_is_the_operations_account() -> None:
    params = {"note": "n"}
    bind_account(params, "acme")
    assert params == {"note": "n", "account": "acme"}
    bind_account(params, "acme")  # the same account again is fine
    with pytest.raises(InvalidArgument, match="differs from the operation's account") as err:
        bind_account({"account": "globex"}, "acme")
    assert err.value.details["parameter"] == "account"


def test_check_parameters_names_the_missing_ones(tmp_path: Path) -> None:
    write(tmp_path / "wf", "test_widgets.py", GOOD)
    wf = build_knowledge_base(tmp_path / "wf", tmp_path / "kb.json").workflow("rename_widget")
    wf.check_parameters({"widget_id": "1", "name": "n"})
    with pytest.raises(InvalidArgument, match="needs parameters: name") as err:
        wf.check_parameters({"widget_id": "1"})
    assert err.value.details["missing"] == ["name"]


def test_cli_build_then_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wf_dir, out = tmp_path / "workflows", tmp_path / "kb.json"
    source = write(wf_dir, "test_widgets.py", GOOD)
    assert main_build(["--bundled", str(wf_dir), "--out", str(out)]) == 0
    assert "1 workflows, 7 steps from 1 files" in capsys.readouterr().out
    assert main_check(["--bundled", str(wf_dir), "--kb", str(out)]) == 0
    source.write_text(GOOD + "\n# edited\n")
    assert main_check(["--bundled", str(wf_dir), "--kb", str(out)]) == 1
    assert "is stale" in capsys.readouterr().err
    write(wf_dir, "test_bad.py", step_file('step(run, intent="x", action="hover", target="#a")'))
    assert main_build(["--bundled", str(wf_dir), "--out", str(out)]) == 1
    assert "test_bad.py:3" in capsys.readouterr().err


# -- helpers and the operator's folders ------------------------------------------------------

SIGN_IN = '''\
"""Steps every store workflow starts with."""
from agentd.workflow_steps import step


def sign_in(run):
    """Sign in as the staff user."""
    step(run, intent="Open sign-in", action="goto", target="/login")
    step(run, intent="User", action="fill", target="#user", value="{secret:user}")
    step(run, intent="Password", action="fill", target="#password", value="{secret:password}")
    step(run, intent="Submit", action="click", target="#go")
    arrive(run)


def arrive(run):
    step(run, intent="Arrive", action="expect_url", target="/admin")
'''

USES_HELPER = '''\
from agentd.workflow_steps import step
from store_steps import sign_in as log_in


def open_widget(run):
    step(run, intent="Open widget", action="goto", target="/widgets/{widget_id}")


def test_read_widget(run):
    """Read widget {widget_id}."""
    log_in(run)
    open_widget(run)
    step(run, intent="Name", action="extract", target="#name", result="name")
    assert run.results
'''


def test_helpers_are_expanded_in_place_with_their_origin(tmp_path: Path) -> None:
    ops = tmp_path / "ops"
    write(ops, "store_steps.py", SIGN_IN)
    write(ops, "test_read_widget.py", USES_HELPER)
    bundled = tmp_path / "bundled"
    write(bundled, "test_widgets.py", GOOD)
    out = tmp_path / "kb.json"
    kb = build_knowledge_base(bundled, out, extra_dirs=[ops], now=NOW)
    assert kb.names == ("read_widget", "rename_widget")
    wf = kb.workflow("read_widget")
    assert [(s.index, s.intent, s.origin) for s in wf.steps] == [
        (1, "Open sign-in", "store_steps.py:sign_in"),
        (2, "User", "store_steps.py:sign_in"),
        (3, "Password", "store_steps.py:sign_in"),
        (4, "Submit", "store_steps.py:sign_in"),
        (5, "Arrive", "store_steps.py:arrive"),
        (6, "Open widget", "test_read_widget.py:open_widget"),
        (7, "Name", None),
    ]
    assert wf.steps[0].line == 7 and wf.steps[4].line == 15  # lines in the helper's file
    assert (wf.parameters, wf.secrets) == (("widget_id",), ("user", "password"))
    # The helper module is a source; the operator's files are named by their full path.
    assert set(kb.sources) == {
        "test_widgets.py",
        f"{ops}/store_steps.py",
        f"{ops}/test_read_widget.py",
    }
    data = json.loads(out.read_text())
    assert data["workflow_dirs"] == [str(ops)]
    assert data["workflows"]["read_widget"]["steps"][0]["origin"] == "store_steps.py:sign_in"
    loaded = load_knowledge_base(out, bundled, [ops])
    assert loaded.workflow("read_widget") == wf
    # Changing the helper makes the knowledge base stale, like changing a test.
    (ops / "store_steps.py").write_text(SIGN_IN + "\n# edited\n")
    with pytest.raises(StaleKnowledgeBase, match=f"changed: {ops}/store_steps.py"):
        load_knowledge_base(out, bundled, [ops])


def test_stale_when_an_operator_file_is_added_or_the_folders_differ(tmp_path: Path) -> None:
    ops, bundled, out = tmp_path / "ops", tmp_path / "bundled", tmp_path / "kb.json"
    write(ops, "store_steps.py", SIGN_IN)
    write(ops, "test_read_widget.py", USES_HELPER)
    write(bundled, "test_widgets.py", GOOD)
    build_knowledge_base(bundled, out, extra_dirs=[ops])
    with pytest.raises(StaleKnowledgeBase, match="configured: none") as err:
        load_knowledge_base(out, bundled, [])
    assert err.value.details["workflow_dirs"] == []
    write(ops, "test_more.py", "def test_nothing():\n    pass\n")
    with pytest.raises(StaleKnowledgeBase, match=f"added: {ops}/test_more.py"):
        load_knowledge_base(out, bundled, [ops])


@pytest.mark.parametrize(
    ("helpers", "call", "message"),
    [
        (
            "def sign_in(run, user):\n    step(run, intent='a', action='goto', target='/')\n",
            "sign_in(run, 'x')",
            "call helper sign_in with the run only",
        ),
        (
            "def sign_in(run, user='x'):\n    step(run, intent='a', action='goto', target='/')\n",
            "sign_in(run)",
            "helper sign_in must take the run as its only argument",
        ),
        (
            "def sign_in(run):\n    if run:\n"
            "        step(run, intent='a', action='goto', target='/')\n",
            "sign_in(run)",
            "helper sign_in can hold only step() calls and helper calls",
        ),
        (
            "def sign_in(run):\n    x = 1\n    step(run, intent='a', action='goto', target='/')\n",
            "sign_in(run)",
            "store_steps.py:4: helper sign_in can hold only step() calls",
        ),
        (
            "def sign_in(run):\n    step(run, intent='a', action='goto', target='/')\n"
            "    sign_in(run)\n",
            "sign_in(run)",
            "helper sign_in (store_steps.py:3) calls itself",
        ),
        (
            "def sign_in(run):\n    step(run, intent='a', action='goto', target='/')\n",
            "for _ in range(2):\n        sign_in(run)",
            "a helper call must be a statement of the test function itself",
        ),
        (
            "def sign_in(run):\n    step(run, intent='a', action='hover', target='/')\n",
            "sign_in(run)",
            "store_steps.py:4: action 'hover' is not allowed",
        ),
    ],
)
def test_helpers_that_cannot_be_expanded_are_refused(
    tmp_path: Path, helpers: str, call: str, message: str
) -> None:
    write(tmp_path / "wf", "store_steps.py", "from x import step\n\n" + helpers)
    test = (
        "from store_steps import sign_in\n\n\ndef test_task(run):\n"
        f'    """Task."""\n    {call}\n    step(run, intent="b", action="goto", target="/b")\n'
    )
    write(tmp_path / "wf", "test_task.py", test)
    with pytest.raises(InvalidArgument) as err:
        build_knowledge_base(tmp_path / "wf", tmp_path / "kb.json")
    assert message in err.value.message, err.value.message


def test_functions_without_steps_are_ordinary_code(tmp_path: Path) -> None:
    test = (
        "from store_steps import count\n\n\ndef test_task(run):\n"
        '    """Task."""\n    count(run)\n    step(run, intent="b", action="goto", target="/b")\n'
    )
    write(tmp_path / "wf", "store_steps.py", "def count(run):\n    return len(run.done)\n")
    write(tmp_path / "wf", "test_task.py", test)
    kb = build_knowledge_base(tmp_path / "wf", tmp_path / "kb.json")
    assert [s.intent for s in kb.workflow("task").steps] == ["b"]
    assert set(kb.sources) == {"test_task.py"}  # nothing was expanded from it


def test_a_name_in_two_folders_is_refused(tmp_path: Path) -> None:
    bundled, ops = tmp_path / "bundled", tmp_path / "ops"
    write(bundled, "test_widgets.py", GOOD)
    write(ops, "test_widgets.py", GOOD)
    with pytest.raises(InvalidArgument, match="workflow 'rename_widget' is also defined in"):
        build_knowledge_base(bundled, tmp_path / "kb.json", extra_dirs=[ops])
    with pytest.raises(InvalidArgument, match="is given twice"):
        build_knowledge_base(bundled, tmp_path / "kb.json", extra_dirs=[bundled])
    with pytest.raises(NotFound, match="does not exist"):
        build_knowledge_base(bundled, tmp_path / "kb.json", extra_dirs=[tmp_path / "nope"])


def test_cli_takes_folders_from_flags_and_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bundled, ops, more = tmp_path / "bundled", tmp_path / "ops", tmp_path / "more"
    write(bundled, "test_widgets.py", GOOD)
    write(ops, "store_steps.py", SIGN_IN)
    write(ops, "test_read_widget.py", USES_HELPER)
    write(more, "test_other.py", GOOD.replace("rename_widget", "rename_gadget"))
    out = tmp_path / "mine.json"
    cfg = tmp_path / "agentd.toml"
    cfg.write_text(
        f'[browser]\nworkflows_dir = "{bundled}"\nworkflow_dirs = ["{ops}"]\n'
        f'knowledge_base = "{out}"\n'
    )
    monkeypatch.delenv("AGENTD_CONFIG", raising=False)
    assert main_build(["--config", str(cfg), "--workflows", str(more)]) == 0
    assert f"wrote {out}: 3 workflows" in capsys.readouterr().out
    # Checked against the same folders: the configured ones alone are not what it was built from.
    assert main_check(["--config", str(cfg), "--workflows", str(more)]) == 0
    assert main_check(["--config", str(cfg)]) == 1
    assert "configured:" in capsys.readouterr().err
    # Your workflows never go into the file shipped with agentd.
    assert main_build(["--bundled", str(bundled), "--workflows", str(ops)]) == 1
    assert "shipped with agentd" in capsys.readouterr().err


def test_shipped_knowledge_base_is_fresh_and_complete() -> None:
    kb = load_knowledge_base(REPO / "knowledge_base/AGENT_KNOWLEDGE_BASE.json", REPO / "workflows")
    assert set(kb.names) >= {
        "api_key_generation",
        "api_key_revocation",
        "product_seo_update",
        "send_follow_up_message",
        "schedule_meeting",
        "add_note",
        "read_product_seo",
        "read_account_activity",
    }
    assert {s.action for w in kb.workflows for s in w.steps} <= ALLOWED_ACTIONS
    assert kb.workflow("api_key_generation").results == ("key_id",)
    seo = kb.workflow("product_seo_update")
    assert {"before_seo_title", "after_seo_title"} <= set(seo.results)
    for wf in kb.workflows:
        assert set(wf.secrets) == {"admin_user", "admin_password"}, wf.name
