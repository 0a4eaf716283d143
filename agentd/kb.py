"""The agent's knowledge base: workflows extracted from the E2E tests under ``workflows/``.

The end-to-end tests of a back-office are the source of truth for how to do a
task. Each test calls a ``step(run, intent=..., action=..., target=..., ...)``
helper (:mod:`agentd.workflow_steps`) with literal arguments, so ``agentd kb
build`` can read the steps with :mod:`ast` (never executing the tests) and
write them to ``knowledge_base/AGENT_KNOWLEDGE_BASE.json``. The registry loads
that file and refuses it when the tests changed since it was built.

One knowledge base is built from the bundled workflows and the operator's own
folders (``--workflows DIR``, ``[browser] workflow_dirs``); two workflows of
the same name are refused, wherever they come from.

Helpers. A prologue shared by many workflows (signing in) is written once, as
a function of the run whose body is nothing but ``step()`` calls and calls of
other helpers, in the test file or in a module of the same folder that the
test imports (``from store_steps import sign_in``). A statement ``sign_in(run)``
of a test is expanded in place: the knowledge base holds the steps, each with
its ``origin`` (``file:function``) and line there, so it stays a plain,
reviewable list. A helper that takes more than the run, holds anything else
(a condition, a loop, an assignment), or calls itself is refused with its file
and line; the modules a workflow expands helpers from are sources of the
knowledge base like the tests (a change makes it stale).

Step semantics (shared by the workflow tests and the browser agents):

- ``target`` is a path relative to the site's base URL for ``goto`` and
  ``expect_url`` (the current path must equal it, query ignored), the text the
  dialog's message must contain for ``accept_dialog`` (it arms acceptance of the
  next dialog; any other dialog is dismissed), and a CSS selector otherwise.
  A selector inside an iframe (a rich-text editor) names the frame first:
  ``#id_content_ifr |> body`` is the ``body`` inside the iframe
  ``#id_content_ifr`` (:data:`FRAME_SEPARATOR`; frames may nest).
- ``value`` is what ``fill``, ``select_option`` and ``press`` type, pick or press.
- ``expect`` is text that must be visible once the step is done: inside the
  target for ``expect_text``, anywhere on the page for the other actions.
- ``extract`` reads the target's input value (or its text) into ``result``;
  an element marked ``data-secret="true"`` is never extracted.
- ``{name}`` is a run-time parameter; ``{secret:name}`` a vault secret, allowed
  only as the ``value`` of ``fill``.
- A parameter in a ``goto`` or ``expect_url`` target is percent-encoded as one
  path segment (``/``, ``?``, ``#``, ``%`` and the like cannot change which page
  is opened) and may not be empty, ``.`` or ``..``; a parameter in a selector
  may hold only letters, digits, ``_`` and ``-`` (it cannot change what the
  selector matches). Values, ``expect`` texts and dialog texts take parameters
  as they are.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote

from agentd.atomic import write_atomically
from agentd.errors import AgentdError, ConfigInvalid, InvalidArgument, NotFound, StaleKnowledgeBase

FORMAT_VERSION = 1
# The bundled workflows and the knowledge base built from them ship beside the package.
PROJECT = Path(__file__).resolve().parent.parent
DEFAULT_WORKFLOWS_DIR = PROJECT / "workflows"
DEFAULT_KB_PATH = PROJECT / "knowledge_base" / "AGENT_KNOWLEDGE_BASE.json"
STEP_FUNCTION = "step"
SOURCE_GLOB = "test_*.py"
REBUILD_HINT = "run `agentd kb build` to refresh it"


class Action(StrEnum):
    """The browser methods a workflow may use: the agent's method allowlist."""

    GOTO = "goto"
    CLICK = "click"
    FILL = "fill"
    SELECT_OPTION = "select_option"
    CHECK = "check"
    PRESS = "press"
    WAIT_FOR = "wait_for"
    EXPECT_TEXT = "expect_text"
    EXPECT_URL = "expect_url"
    EXTRACT = "extract"
    ACCEPT_DIALOG = "accept_dialog"


ALLOWED_ACTIONS: frozenset[str] = frozenset(a.value for a in Action)
_NEEDS_VALUE = frozenset({Action.FILL, Action.SELECT_OPTION, Action.PRESS})
_STEP_FIELDS = ("intent", "action", "target", "value", "expect", "result")
# Between the selector of an iframe and a selector inside it.
FRAME_SEPARATOR = " |> "
_PLACEHOLDER_RE = re.compile(r"\{(secret:)?([A-Za-z_][A-Za-z0-9_]*)\}")
_RESULT_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
_SELECTOR_VALUE_RE = re.compile(r"[\w-]+")
# Targets that are URL paths on the site; the others (apart from a dialog's text) are selectors.
_URL_TARGETS = frozenset({Action.GOTO, Action.EXPECT_URL})


def placeholders(text: str | None) -> tuple[list[str], list[str]]:
    """Return the (parameters, secrets) named in a step string, in order of appearance."""
    params: list[str] = []
    secret_names: list[str] = []
    for match in _PLACEHOLDER_RE.finditer(text or ""):
        bucket = secret_names if match.group(1) else params
        if match.group(2) not in bucket:
            bucket.append(match.group(2))
    return params, secret_names


def frame_parts(target: str) -> tuple[list[str], str]:
    """Split a selector into the iframes it enters, outermost first, and its inner selector."""
    *frames, inner = target.split(FRAME_SEPARATOR)
    return frames, inner


def substitute(
    text: str,
    params: Mapping[str, str],
    secrets: Mapping[str, str] | None = None,
    *,
    encode: Callable[[str, str], str] | None = None,
) -> str:
    """Replace ``{name}`` and ``{secret:name}`` placeholders.

    ``encode(name, value)`` turns each parameter's value into what is put in
    (see :func:`url_parameter`, :func:`selector_parameter`); secrets are put in as they are.

    :raises InvalidArgument: a placeholder has no value, or ``encode`` refuses one.
    """

    def one(match: re.Match[str]) -> str:
        source = secrets if match.group(1) else params
        kind = "secret" if match.group(1) else "parameter"
        if source is None or match.group(2) not in source:
            raise InvalidArgument(f"missing {kind} {match.group(2)!r}", details={kind: match[2]})
        value = str(source[match.group(2)])
        return value if encode is None or match.group(1) else encode(match.group(2), value)

    return _PLACEHOLDER_RE.sub(one, text)


def url_parameter(name: str, value: str) -> str:
    """Return a parameter's value percent-encoded as one segment of a URL path.

    Every character but letters, digits and ``_.-~`` is encoded, so a value
    cannot add a path segment, a query or a fragment, nor escape its own encoding.

    :raises InvalidArgument: the value is empty, ``.`` or ``..`` (it would name another page).
    """
    if value in ("", ".", ".."):
        raise InvalidArgument(
            f"parameter {name!r} may not be {value!r}: it goes into a URL path",
            details={"parameter": name},
        )
    return quote(value, safe="")


def selector_parameter(name: str, value: str) -> str:
    """Return a parameter's value for a selector, checked to be a plain name.

    :raises InvalidArgument: the value holds anything but letters, digits, ``_`` and ``-``
        (a quote, bracket, space or combinator could change what the selector matches).
    """
    if not _SELECTOR_VALUE_RE.fullmatch(value):
        raise InvalidArgument(
            f"parameter {name!r} goes into a selector: it may hold only letters, digits, "
            f"'_' and '-', not {value!r}",
            details={"parameter": name},
        )
    return value


def bind_account(params: dict[str, str], account: str) -> None:
    """Set ``params["account"]`` to the operation's account.

    :raises InvalidArgument: the parameters name another account (an operation
        runs under its own account's consent, secrets and allowlist, so it may
        not act on another's page).
    """
    given = params.get("account")
    if given is not None and given != account:
        raise InvalidArgument(
            f"parameter account={given!r} differs from the operation's account {account!r}: "
            "a workflow's account is always the operation's (run it with --account instead)",
            details={"field": "params", "parameter": "account"},
        )
    params["account"] = account


@dataclass(frozen=True)
class Step:
    """One step of a workflow; ``line`` is where it is written in its test file."""

    index: int
    intent: str
    action: Action
    target: str
    value: str | None = None
    expect: str | None = None
    result: str | None = None
    line: int = 0
    origin: str | None = None  # "file:function" of the helper it was written in, if any

    def render(self, params: Mapping[str, str], secrets: Mapping[str, str]) -> Step:
        """Return this step with its placeholders filled in.

        The rendered step may hold secret values: audit and log the unrendered one.

        :raises InvalidArgument: a parameter or secret is missing.
        """
        return replace(
            self,
            target=substitute(self.target, params, encode=self.target_encoding()),
            value=None if self.value is None else substitute(self.value, params, secrets),
            expect=None if self.expect is None else substitute(self.expect, params),
        )

    def target_encoding(self) -> Callable[[str, str], str] | None:
        """Return how a parameter is put into this step's target (None: as it is)."""
        if self.action in _URL_TARGETS:
            return url_parameter
        if self.action is Action.ACCEPT_DIALOG:
            return None  # text the dialog's message must contain
        return selector_parameter

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "intent": self.intent,
            "action": self.action.value,
            "target": self.target,
            "value": self.value,
            "expect": self.expect,
            "result": self.result,
            "line": self.line,
            "origin": self.origin,
        }


@dataclass(frozen=True)
class Workflow:
    """A task the agent knows how to do, as written in one E2E test."""

    name: str
    description: str
    source: str
    parameters: tuple[str, ...]
    secrets: tuple[str, ...]
    steps: tuple[Step, ...]

    @property
    def results(self) -> tuple[str, ...]:
        """Return the names of the values the workflow extracts, in step order."""
        return tuple(s.result for s in self.steps if s.result)

    def check_parameters(self, params: Mapping[str, str]) -> None:
        """Check that every parameter the workflow uses is given, and fits where it goes.

        :raises InvalidArgument: some are missing (``details["missing"]``), or a
            value cannot go into a step's URL or selector (``details["parameter"]``).
        """
        missing = [p for p in self.parameters if p not in params]
        if missing:
            raise InvalidArgument(
                f"workflow {self.name!r} needs parameters: {', '.join(missing)}",
                details={"workflow": self.name, "missing": missing},
            )
        for step in self.steps:
            substitute(step.target, params, encode=step.target_encoding())

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "parameters": list(self.parameters),
            "secrets": list(self.secrets),
            "results": list(self.results),
            "steps": [s.to_dict() for s in self.steps],
        }


@dataclass(frozen=True)
class KnowledgeBase:
    """Every workflow, with the hashes of the test files they came from."""

    generated_at: str
    sources: Mapping[str, str]
    workflows: tuple[Workflow, ...]
    format_version: int = FORMAT_VERSION
    workflow_dirs: tuple[str, ...] = ()  # the operator's folders (absolute), beside the bundled
    _by_name: Mapping[str, Workflow] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {w.name: w for w in self.workflows})

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(w.name for w in self.workflows)

    def workflow(self, name: str) -> Workflow:
        """Return a workflow by name.

        :raises NotFound: no workflow of that name.
        """
        found = self._by_name.get(name)
        if found is None:
            raise NotFound(
                f"no workflow named {name!r} in the knowledge base "
                f"(known: {', '.join(self.names) or 'none'})",
                details={"workflow": name},
            )
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "generated_at": self.generated_at,
            "generator": "agentd kb build",
            "allowed_actions": sorted(ALLOWED_ACTIONS),
            "sources": dict(self.sources),
            "workflow_dirs": list(self.workflow_dirs),
            "workflows": {w.name: w.to_dict() for w in self.workflows},
        }


# -- extraction ---------------------------------------------------------------------------


def _is_step_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name | ast.Attribute)
        and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr) == STEP_FUNCTION
    )


def _statement_call(stmt: ast.stmt) -> ast.Call | None:
    value = stmt.value if isinstance(stmt, ast.Expr | ast.Assign | ast.AnnAssign) else None
    return value if isinstance(value, ast.Call) and _is_step_call(value) else None


def _step_from_call(
    call: ast.Call, index: int, where: str, problems: list[str], origin: str | None = None
) -> Step | None:
    at = f"{where}:{call.lineno}"
    args: dict[str, str | None] = {}
    ok = True
    if len(call.args) != 1:
        problems.append(f"{at}: step() takes the run as its only positional argument")
        ok = False
    for kw in call.keywords:
        if kw.arg is None or kw.arg not in _STEP_FIELDS:
            problems.append(f"{at}: unknown step argument {kw.arg or '**'!r}")
            ok = False
        elif not isinstance(kw.value, ast.Constant) or not isinstance(
            kw.value.value, str | type(None)
        ):
            problems.append(f"{at}: step argument {kw.arg!r} must be a literal string")
            ok = False
        else:
            args[kw.arg] = kw.value.value
    if not ok:
        return None
    action, target = args.get("action"), args.get("target")
    if not args.get("intent"):
        problems.append(f"{at}: step has no intent")
    if action not in ALLOWED_ACTIONS:
        allowed = ", ".join(sorted(ALLOWED_ACTIONS))
        problems.append(f"{at}: action {action!r} is not allowed (allowed: {allowed})")
        return None
    if not target:
        problems.append(f"{at}: {action} step has no target")
    step = Step(
        index,
        args.get("intent") or "",
        Action(action),
        target or "",
        args.get("value"),
        args.get("expect"),
        args.get("result"),
        call.lineno,
        origin,
    )
    problems.extend(f"{at}: {msg}" for msg in _step_problems(step))
    return step


def _step_problems(step: Step) -> list[str]:
    """Return what is wrong with a step beyond its action and target (shared with loading)."""
    out: list[str] = []
    if step.action in _NEEDS_VALUE and not step.value:
        out.append(f"{step.action} step needs a value")
    if step.action is Action.EXPECT_TEXT and not step.expect:
        out.append("expect_text step needs an expect text")
    if step.action is Action.EXTRACT:
        if not step.result or not _RESULT_RE.match(step.result):
            out.append("extract step needs a result name (lowercase identifier)")
    elif step.result:
        out.append(f"only extract steps have a result, not {step.action}")
    # Navigation stays on the site the workflow was written for: paths only, never URLs.
    is_navigation = step.action in (Action.GOTO, Action.EXPECT_URL)
    if is_navigation and step.target and not re.match(r"^/(?!/)", step.target):
        out.append(f"{step.action} target must be a path on the site starting with '/'")
    framed = FRAME_SEPARATOR in step.target
    if framed and (is_navigation or step.action is Action.ACCEPT_DIALOG):
        out.append(f"a {step.action} target has no frames ({FRAME_SEPARATOR.strip()})")
    elif framed and not all(p.strip() for p in step.target.split(FRAME_SEPARATOR)):
        out.append(f"an empty selector before or after {FRAME_SEPARATOR.strip()}")
    for name, text in (("target", step.target), ("expect", step.expect)):
        if placeholders(text)[1]:
            out.append(f"secrets may only be used as a fill value, not in {name}")
    if placeholders(step.value)[1] and step.action is not Action.FILL:
        out.append("secrets may only be used as a fill value")
    is_password = step.action is Action.FILL and "password" in step.target.lower()
    if is_password and not re.fullmatch(r"\{secret:[A-Za-z_][A-Za-z0-9_]*\}", step.value or ""):
        out.append("a password must come from the vault: use value='{secret:NAME}'")
    return out


@dataclass
class _Module:
    """A parsed Python file of a workflows folder: its functions and what it imports."""

    key: str  # its name in the knowledge base's sources
    path: Path
    tree: ast.Module
    functions: dict[str, ast.FunctionDef]
    imports: dict[str, tuple[str, str]]  # local name -> (module file stem, function name)


@dataclass
class _Helper:
    module: _Module
    func: ast.FunctionDef


class _Folder:
    """One workflows folder: parses its files once and resolves helper calls in them."""

    def __init__(self, folder: Path, key: Callable[[Path], str]) -> None:
        self.folder = folder
        self.key = key
        self._modules: dict[str, _Module | None] = {}
        self.used: dict[str, Path] = {}  # helper modules expanded from: key -> path

    def module(self, path: Path, problems: list[str] | None = None) -> _Module | None:
        """Parse a file of the folder (None when it cannot be parsed: a problem is listed)."""
        name = path.name
        if name in self._modules:
            return self._modules[name]
        key = self.key(path)
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except SyntaxError as exc:
            if problems is not None:
                problems.append(f"{key}:{exc.lineno}: cannot parse: {exc.msg}")
            self._modules[name] = None
            return None
        functions = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
        imports: dict[str, tuple[str, str]] = {}
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module and node.level <= 1:
                parts = node.module.split(".")
                # `from store_steps import f`, `from .store_steps import f`, or
                # `from <folder>.store_steps import f`: a module of this folder.
                local = (
                    len(parts) == 1 or (len(parts) == 2 and parts[0] == self.folder.name)
                ) and (self.folder / f"{parts[-1]}.py").is_file()
                if local:
                    for alias in node.names:
                        imports[alias.asname or alias.name] = (parts[-1], alias.name)
        found = _Module(key, path, tree, functions, imports)
        self._modules[name] = found
        return found

    def resolve(self, module: _Module, name: str) -> _Helper | None:
        """Return the helper a call of ``name`` in ``module`` refers to, if it is one."""
        func = module.functions.get(name)
        if func is not None and not name.startswith("test_"):
            return _Helper(module, func) if self._has_steps(module, func, set()) else None
        if name not in module.imports:
            return None
        stem, real = module.imports[name]
        other = self.module(self.folder / f"{stem}.py")
        if other is None or real not in other.functions:
            return None
        func = other.functions[real]
        return _Helper(other, func) if self._has_steps(other, func, set()) else None

    def _has_steps(self, module: _Module, func: ast.FunctionDef, seen: set[str]) -> bool:
        """Return whether a function calls step(), itself or through helpers of the folder."""
        mark = f"{module.key}:{func.name}"
        if mark in seen:
            return False
        seen.add(mark)
        for node in ast.walk(func):
            if _is_step_call(node):
                return True
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                name = node.func.id
                target = module.functions.get(name)
                if target is not None and self._has_steps(module, target, seen):
                    return True
                if name in module.imports:
                    stem, real = module.imports[name]
                    other = self.module(self.folder / f"{stem}.py")
                    if other is not None and real in other.functions:
                        if self._has_steps(other, other.functions[real], seen):
                            return True
        return False

    def helper_call(self, module: _Module, stmt: ast.stmt) -> tuple[ast.Call, _Helper] | None:
        """Return the helper a statement ``helper(run)`` calls, if it is one."""
        if not isinstance(stmt, ast.Expr) or not isinstance(stmt.value, ast.Call):
            return None
        call = stmt.value
        if not isinstance(call.func, ast.Name):
            return None
        helper = self.resolve(module, call.func.id)
        return (call, helper) if helper is not None else None

    def nested_helper(self, module: _Module, node: ast.AST) -> bool:
        return (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and self.resolve(module, node.func.id) is not None
        )

    def expand(
        self,
        call: ast.Call,
        helper: _Helper,
        where: str,
        steps: list[Step],
        problems: list[str],
        stack: tuple[str, ...] = (),
    ) -> None:
        """Append the steps of ``helper(run)`` (called at ``where``) to ``steps``."""
        func, module = helper.func, helper.module
        mark = f"{module.key}:{func.name}"
        at = f"{module.key}:{func.lineno}"
        if mark in stack:
            problems.append(f"{where}: helper {func.name} ({at}) calls itself; cannot expand it")
            return
        if call.keywords or len(call.args) != 1:
            problems.append(
                f"{where}: call helper {func.name} with the run only ({func.name}(run)); "
                "pass values with run.bind() and {name} placeholders"
            )
            return
        args = func.args
        if (
            len(args.posonlyargs) + len(args.args) != 1
            or args.vararg
            or args.kwarg
            or args.kwonlyargs
            or args.defaults
        ):
            problems.append(
                f"{at}: helper {func.name} must take the run as its only argument "
                "to be expanded into the knowledge base"
            )
            return
        self.used[module.key] = module.path
        body = func.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # its docstring
        origin = f"{module.path.name}:{func.name}"
        for stmt in body:
            step_call = _statement_call(stmt)
            if step_call is not None:
                step = _step_from_call(
                    step_call, len(steps) + 1, module.key, problems, origin=origin
                )
                if step is not None:
                    steps.append(step)
                continue
            inner = self.helper_call(module, stmt)
            if inner is not None:
                self.expand(
                    inner[0],
                    inner[1],
                    f"{module.key}:{stmt.lineno}",
                    steps,
                    problems,
                    (*stack, mark),
                )
                continue
            problems.append(
                f"{module.key}:{stmt.lineno}: helper {func.name} can hold only step() calls "
                f"and helper calls to be expanded into the knowledge base, not "
                f"{type(stmt).__name__.lower()}"
            )


def _extract_module(folder: _Folder, module: _Module) -> tuple[list[Workflow], list[str]]:
    problems: list[str] = []
    source = module.key
    workflows: list[Workflow] = []
    for func in module.tree.body:
        if not isinstance(func, ast.FunctionDef) or not func.name.startswith("test_"):
            continue
        steps: list[Step] = []
        for stmt in func.body:
            call = _statement_call(stmt)
            if call is not None:
                step = _step_from_call(call, len(steps) + 1, source, problems)
                if step is not None:
                    steps.append(step)
                continue
            helper = folder.helper_call(module, stmt)
            if helper is not None:
                folder.expand(helper[0], helper[1], f"{source}:{stmt.lineno}", steps, problems)
                continue
            for node in ast.walk(stmt):
                if _is_step_call(node) or folder.nested_helper(module, node):
                    what = "step()" if _is_step_call(node) else "a helper call"
                    problems.append(
                        f"{source}:{getattr(node, 'lineno', stmt.lineno)}: {what} must be a "
                        "statement of the test function itself (not nested), so runs are linear"
                    )
        if not steps:
            continue  # a test without steps is not a workflow
        description = ast.get_docstring(func)
        if not description:
            problems.append(f"{source}:{func.lineno}: {func.name} needs a docstring (its intent)")
        params: list[str] = []
        secret_names: list[str] = []
        for step in steps:
            for text in (step.target, step.value, step.expect):
                found_params, found_secrets = placeholders(text)
                params += [p for p in found_params if p not in params]
                secret_names += [s for s in found_secrets if s not in secret_names]
        workflows.append(
            Workflow(
                func.name.removeprefix("test_"),
                description or "",
                source,
                tuple(params),
                tuple(secret_names),
                tuple(steps),
            )
        )
    return workflows, problems


def extract_workflows(path: Path, source: str) -> tuple[list[Workflow], list[str]]:
    """Parse one test file; return its workflows and the problems found (``file:line: ...``)."""
    folder = _Folder(path.parent, lambda p: source if p == path else p.name)
    problems: list[str] = []
    module = folder.module(path, problems)
    if module is None:
        return [], problems
    return _extract_module(folder, module)


def _hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _source_key(bundled: Path | None, path: Path) -> str:
    """A bundled file is named relative to its folder; an operator's by its absolute path."""
    if bundled is not None and path.parent == bundled:
        return path.name
    return path.absolute().as_posix()


def source_hashes(workflows_dir: Path) -> dict[str, str]:
    """Return {path relative to the workflows folder: sha256} of every workflow test file."""
    return {
        path.relative_to(workflows_dir).as_posix(): _hash(path)
        for path in sorted(workflows_dir.glob(SOURCE_GLOB))
        if path.is_file()
    }


def _operator_dirs(workflows_dir: Path | None, extra: Sequence[Path]) -> list[Path]:
    dirs: list[Path] = []
    bundled = workflows_dir.absolute() if workflows_dir is not None else None
    for raw in extra:
        folder = raw.expanduser().absolute()
        if not folder.is_dir():
            raise NotFound(f"workflows folder {folder} does not exist")
        if folder == bundled or folder in dirs:
            raise InvalidArgument(f"workflows folder {folder} is given twice")
        dirs.append(folder)
    return dirs


def build_knowledge_base(
    workflows_dir: Path,
    out_path: Path,
    *,
    extra_dirs: Sequence[Path] = (),
    now: datetime | None = None,
) -> KnowledgeBase:
    """Extract every workflow under ``workflows_dir`` (the bundled folder) and the operator's
    ``extra_dirs``, and write the knowledge base atomically.

    :raises NotFound: a folder does not exist.
    :raises InvalidArgument: a step or helper is invalid (every problem listed as
        ``file:line: ...``), two workflows share a name, a folder is given twice, or there
        are no workflows.
    """
    if not workflows_dir.is_dir():
        raise NotFound(f"workflows folder {workflows_dir} does not exist")
    bundled = workflows_dir.absolute()
    operator = _operator_dirs(bundled, extra_dirs)
    sources: dict[str, str] = {}
    workflows: list[Workflow] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for folder_path in (bundled, *operator):
        folder = _Folder(folder_path, lambda p: _source_key(bundled, p))
        for path in sorted(folder_path.glob(SOURCE_GLOB)):
            if not path.is_file():
                continue
            key = folder.key(path)
            sources[key] = _hash(path)
            module = folder.module(path, problems)
            if module is None:
                continue
            found, file_problems = _extract_module(folder, module)
            problems += file_problems
            for wf in found:
                if wf.name in seen:
                    problems.append(
                        f"{key}: workflow {wf.name!r} is also defined in {seen[wf.name]}"
                    )
                seen[wf.name] = key
                workflows.append(wf)
        for key, path in folder.used.items():
            sources[key] = _hash(path)
    if problems:
        raise InvalidArgument(
            "invalid workflow steps:\n  " + "\n  ".join(problems), details={"problems": problems}
        )
    if not workflows:
        folders = ", ".join(str(f) for f in (workflows_dir, *operator))
        raise InvalidArgument(f"no workflows found in {folders} ({SOURCE_GLOB})")
    stamp = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    kb = KnowledgeBase(
        stamp,
        dict(sorted(sources.items())),
        tuple(sorted(workflows, key=lambda w: w.name)),
        workflow_dirs=tuple(f.as_posix() for f in operator),
    )
    write_atomically(out_path, json.dumps(kb.to_dict(), indent=2, sort_keys=True) + "\n")
    return kb


# -- loading ------------------------------------------------------------------------------


def _require(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise ConfigInvalid(f"{where}.{key} is missing")
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ConfigInvalid(f"{where}.{key} has the wrong type ({type(value).__name__})")
    return value


def _optional_str(data: Mapping[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigInvalid(f"{where}.{key} must be a string or null")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigInvalid(f"{where} must be a list of strings")
    return tuple(value)


def _parse_step(data: Any, where: str) -> Step:
    if not isinstance(data, dict):
        raise ConfigInvalid(f"{where} must be an object")
    action = _require(data, "action", str, where)
    if action not in ALLOWED_ACTIONS:
        raise ConfigInvalid(f"{where}.action {action!r} is not an allowed action")
    step = Step(
        index=_require(data, "index", int, where),
        intent=_require(data, "intent", str, where),
        action=Action(action),
        target=_require(data, "target", str, where),
        value=_optional_str(data, "value", where),
        expect=_optional_str(data, "expect", where),
        result=_optional_str(data, "result", where),
        line=_require(data, "line", int, where),
        origin=_optional_str(data, "origin", where),
    )
    problems = ([] if step.target else ["step has no target"]) + _step_problems(step)
    if problems:
        raise ConfigInvalid(f"{where}: {problems[0]}")
    return step


def _parse(data: Any) -> KnowledgeBase:
    if not isinstance(data, dict):
        raise ConfigInvalid("the knowledge base must be a JSON object")
    version = _require(data, "format_version", int, "kb")
    if version != FORMAT_VERSION:
        raise ConfigInvalid(f"knowledge base format {version} is not {FORMAT_VERSION}")
    sources = _require(data, "sources", dict, "kb")
    if not all(isinstance(v, str) for v in sources.values()):
        raise ConfigInvalid("kb.sources must map file names to sha256 strings")
    workflows: list[Workflow] = []
    for name, raw in sorted(_require(data, "workflows", dict, "kb").items()):
        where = f"kb.workflows.{name}"
        if not isinstance(raw, dict):
            raise ConfigInvalid(f"{where} must be an object")
        raw_steps = _require(raw, "steps", list, where)
        steps = tuple(_parse_step(s, f"{where}.steps[{i}]") for i, s in enumerate(raw_steps))
        if not steps:
            raise ConfigInvalid(f"{where} has no steps")
        workflows.append(
            Workflow(
                name=name,
                description=_require(raw, "description", str, where),
                source=_require(raw, "source", str, where),
                parameters=_strings(
                    _require(raw, "parameters", list, where), f"{where}.parameters"
                ),
                secrets=_strings(_require(raw, "secrets", list, where), f"{where}.secrets"),
                steps=steps,
            )
        )
    dirs = _strings(data.get("workflow_dirs", []), "kb.workflow_dirs")
    return KnowledgeBase(
        _require(data, "generated_at", str, "kb"),
        dict(sources),
        tuple(workflows),
        workflow_dirs=dirs,
    )


def _display(workflows_dir: Path, key: str) -> str:
    return key if key.startswith("/") else f"{workflows_dir.name}/{key}"


def check_fresh(
    kb: KnowledgeBase,
    workflows_dir: Path,
    kb_path: Path | str = "",
    workflow_dirs: Sequence[Path] | None = None,
) -> None:
    """Check the knowledge base against the workflow tests (and helpers) it was built from.

    ``workflows_dir`` is the bundled folder; the operator's folders are the ones the
    knowledge base records. With ``workflow_dirs`` (the configured ones), a knowledge
    base built from other folders is stale too.

    :raises StaleKnowledgeBase: a source file was changed, added or removed, or the
        configured folders are not the ones it was built from (``details`` lists each).
    """
    current: dict[str, str] = {}
    for key in kb.sources:
        path = Path(key) if key.startswith("/") else workflows_dir / key
        if path.is_file():
            current[key] = _hash(path)
    for folder in (workflows_dir, *(Path(d) for d in kb.workflow_dirs)):
        bundled = workflows_dir.absolute()
        for path in sorted(folder.glob(SOURCE_GLOB)) if folder.is_dir() else []:
            key = _source_key(bundled, path.absolute())
            if path.is_file() and key not in current:
                current[key] = _hash(path)
    changed = sorted(p for p in current.keys() & kb.sources.keys() if current[p] != kb.sources[p])
    added = sorted(current.keys() - kb.sources.keys())
    removed = sorted(kb.sources.keys() - current.keys())
    parts = [
        f"{label}: {', '.join(_display(workflows_dir, p) for p in paths)}"
        for label, paths in (("changed", changed), ("added", added), ("removed", removed))
        if paths
    ]
    details: dict[str, Any] = {"changed": changed, "added": added, "removed": removed}
    if workflow_dirs is not None:
        wanted = sorted(d.expanduser().absolute().as_posix() for d in workflow_dirs)
        if wanted != sorted(kb.workflow_dirs):
            parts.append(
                f"built from the workflow folders {sorted(kb.workflow_dirs) or 'none'}, "
                f"configured: {wanted or 'none'}"
            )
            details["workflow_dirs"] = wanted
    if not parts:
        return
    raise StaleKnowledgeBase(
        f"knowledge base {kb_path or DEFAULT_KB_PATH} is stale: the workflow tests changed since "
        f"it was built ({'; '.join(parts)}); {REBUILD_HINT}",
        details=details,
    )


def load_knowledge_base(
    path: Path, workflows_dir: Path | None = None, workflow_dirs: Sequence[Path] | None = None
) -> KnowledgeBase:
    """Load and validate the knowledge base; with ``workflows_dir``, refuse a stale one.

    ``workflow_dirs``: the operator's configured folders (see :func:`check_fresh`).

    :raises NotFound: the file does not exist.
    :raises ConfigInvalid: the file is not a valid knowledge base.
    :raises StaleKnowledgeBase: the workflow tests changed since it was built.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(f"knowledge base {path} does not exist; {REBUILD_HINT}") from None
    except OSError as exc:
        raise ConfigInvalid(f"cannot read knowledge base {path}: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigInvalid(
            f"knowledge base {path} is not valid JSON (line {exc.lineno}): {exc.msg}; "
            + REBUILD_HINT
        ) from exc
    try:
        kb = _parse(data)
    except ConfigInvalid as exc:
        raise ConfigInvalid(
            f"knowledge base {path} is invalid: {exc.message}; {REBUILD_HINT}"
        ) from exc
    if workflows_dir is not None:
        check_fresh(kb, workflows_dir, path, workflow_dirs)
    return kb


# -- command line -------------------------------------------------------------------------


def _arguments(parser: argparse.ArgumentParser, out_flag: str) -> None:
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="agentd's configuration, for [browser] knowledge_base, workflows_dir and "
        "workflow_dirs (default: $AGENTD_CONFIG, else /etc/agentd/agentd.toml if it exists)",
    )
    parser.add_argument(
        "--workflows",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="a folder of your own workflow tests, added to the bundled ones and to "
        "[browser] workflow_dirs (repeatable)",
    )
    parser.add_argument(
        "--bundled",
        type=Path,
        metavar="DIR",
        help="the bundled workflows folder (default: [browser] workflows_dir, "
        "the one shipped with agentd)",
    )
    parser.add_argument(
        out_flag,
        dest="kb",
        type=Path,
        help="knowledge base file (default: [browser] knowledge_base, the one shipped with agentd)",
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``agentd kb build|check``."""
    summary = (
        "Build or check the knowledge base extracted from workflows/, or learn a workflow "
        "from a model-planned operation."
    )
    parser = argparse.ArgumentParser(
        prog="agentd kb", description=summary, epilog="Example: agentd kb check"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, out_flag, text, example in (
        (
            "build",
            "--out",
            "Extract the workflow tests' steps (bundled and your own) and write the "
            "knowledge base.",
            "agentd kb build --config /etc/agentd/agentd.toml --workflows /etc/agentd/workflows",
        ),
        (
            "check",
            "--kb",
            "Exit 1 when the knowledge base is stale (its workflow tests changed since).",
            "agentd kb check",
        ),
    ):
        p = sub.add_parser(name, help=text, description=text, epilog=f"Example: {example}")
        _arguments(p, out_flag)
    from agentd import learn

    learn.add_parser(sub)
    return parser


@dataclass(frozen=True)
class _Paths:
    bundled: Path
    extra: tuple[Path, ...]
    kb: Path


def _paths(args: argparse.Namespace) -> _Paths:
    """Resolve the folders and the file from the flags, then the configuration.

    :raises ConfigInvalid: the configuration is invalid.
    :raises InvalidArgument: your workflows would be written into the shipped file.
    """
    from agentd.config import load_settings

    browser = load_settings(args.config).browser
    bundled = args.bundled or browser.workflows_dir or DEFAULT_WORKFLOWS_DIR
    extra = tuple(browser.workflow_dirs) + tuple(args.workflows)
    kb = (args.kb or browser.knowledge_base).expanduser().absolute()
    if extra and kb == DEFAULT_KB_PATH:
        raise InvalidArgument(
            f"{kb} is the knowledge base shipped with agentd (replaced by each upgrade): "
            "write one with your workflows elsewhere, set in [browser] knowledge_base "
            "(or --out FILE)"
        )
    return _Paths(bundled, extra, kb)


def _build(args: argparse.Namespace) -> int:
    try:
        paths = _paths(args)
        kb = build_knowledge_base(paths.bundled, paths.kb, extra_dirs=paths.extra)
    except AgentdError as exc:
        print(f"agentd kb build: error: {exc.message}", file=sys.stderr)
        return 1
    steps = sum(len(w.steps) for w in kb.workflows)
    print(
        f"wrote {paths.kb}: {len(kb.workflows)} workflows, {steps} steps "
        f"from {len(kb.sources)} files"
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    try:
        paths = _paths(args)
        kb = load_knowledge_base(paths.kb, paths.bundled, paths.extra)
    except AgentdError as exc:
        print(f"agentd kb check: error: {exc.message}", file=sys.stderr)
        return 1
    print(f"{paths.kb} is up to date: {', '.join(kb.names)}")
    return 0


def main_build(argv: Sequence[str] | None = None) -> int:
    """``agentd kb build [--workflows DIR ...] [--out FILE]``: extract, write the knowledge base."""
    return main(["build", *(sys.argv[1:] if argv is None else argv)])


def main_check(argv: Sequence[str] | None = None) -> int:
    """``agentd kb check [--workflows DIR] [--kb FILE]``: exit 1 if the knowledge base is stale."""
    return main(["check", *(sys.argv[1:] if argv is None else argv)])


def main(argv: Sequence[str] | None = None) -> int:
    """``agentd kb build|check|learn ...``."""
    args = build_parser().parse_args(argv)
    if args.command == "learn":
        from agentd import learn

        return learn.main(args)
    return _build(args) if args.command == "build" else _check(args)


if __name__ == "__main__":
    sys.exit(main())
