"""``agentd kb learn``: turn a completed model-planned operation into a workflow test.

The steps the model planned and that ran (status ``ok``, source ``agent``, the
last attempt) become ``step()`` calls of a new workflow test file, written
into the operator's workflows folder (``--into DIR``, else the first of
``[browser] workflow_dirs``) for a person to read. It never enters the
knowledge base by itself: ``agentd kb build`` adds it once reviewed.

- Selectors are the stable ones the agent recorded for each element
  (:func:`~agentd.core.agent_mode.stable_selector`: ``data-testid``, id,
  field name, link), so the replay does not depend on the digest's references.
- ``--param NAME=VALUE`` lifts a value into a parameter: every occurrence of
  ``VALUE`` in the task, the targets, the values and the expected texts
  becomes ``{NAME}`` (``--param account=ACCOUNT`` too: it is the operation's).
- Secrets stay ``{secret:name}`` placeholders; a ``goto`` keeps the path only.
- The test's docstring is ``Task: TEXT`` (the task with its parameters): a later
  ``agentctl op run --task`` whose text reads as it (the parameters filled in
  any way) runs this workflow, with no model call.

The file is written atomically and never over an existing one.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from agentd.atomic import write_atomically
from agentd.core.agent_mode import TASK_PREFIX, TASK_WORKFLOW
from agentd.errors import AgentdError, AlreadyExists, InvalidArgument, InvalidState, NotFound
from agentd.store.ops_sql import read_learnable
from agentd.store.records import OperationRow, StepRow

_NAME = re.compile(r"[a-z][a-z0-9_]{0,59}")
_FIELDS = ("intent", "action", "target", "value", "expect", "result")


def lift(text: str | None, params: Mapping[str, str]) -> str | None:
    """Return ``text`` with each parameter's value replaced by ``{name}`` (longest first)."""
    if text is None:
        return None
    for name, value in sorted(params.items(), key=lambda kv: len(kv[1]), reverse=True):
        text = text.replace(value, "{" + name + "}")
    return text


def _path_only(target: str) -> str:
    if not target.startswith(("http://", "https://")):
        return target
    parts = urlsplit(target)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def learned_steps(
    op: OperationRow, steps: Sequence[StepRow], params: Mapping[str, str]
) -> list[dict[str, str | None]]:
    """Return the workflow steps of a completed task operation, parameters lifted.

    :raises InvalidState: the operation is not a completed task operation, or ran no step.
    """
    if op.workflow != TASK_WORKFLOW or not op.task:
        raise InvalidState(f"operation {op.id} ran the workflow {op.workflow}, not a task")
    if op.state != "completed":
        raise InvalidState(f"operation {op.id} is {op.state}; only a completed task is learned")
    ran = [
        s
        for s in steps
        if s.attempt == op.attempts and s.source == "agent" and s.status == "ok" and s.idx > 0
    ]
    if not ran:
        raise InvalidState(f"operation {op.id} has no step to learn")
    out: list[dict[str, str | None]] = []
    for s in ran:
        detail = s.detail or {}
        target = _path_only(s.target) if s.action == "goto" else s.target
        out.append(
            {
                "intent": lift(" ".join(s.intent.split())[:200], params),
                "action": s.action,
                "target": lift(target, params),
                "value": lift(detail.get("value"), params),
                "expect": lift(detail.get("expect"), params),
                "result": detail.get("result"),
            }
        )
    return out


def render_test(name: str, op: OperationRow, steps: Sequence[Mapping[str, str | None]],
                params: Mapping[str, str]) -> str:  # fmt: skip
    """Return the workflow test file's text."""
    task = lift(" ".join((op.task or "").split()), params) or ""
    lines = [
        f'"""Workflow learned from operation {op.id} (agent mode): review it, then run',
        '`agentd kb build` to add it to the knowledge base."""',
        "",
        "from __future__ import annotations",
        "",
        "from agentd.workflow_steps import WorkflowRun, step",
        "",
        "",
        f"def test_{name}(run: WorkflowRun) -> None:",
        f"    {_literal(TASK_PREFIX + task, docstring=True)}",
    ]
    if params:
        bound = ", ".join(f"{k}={_literal(v)}" for k, v in sorted(params.items()))
        lines.append(f"    run.bind({bound})")
    for s in steps:
        args = ", ".join(f"{k}={_literal(s[k] or '')}" for k in _FIELDS if s.get(k) is not None)
        lines.append(f"    step(run, {args})")
    return "\n".join(lines) + "\n"


def _literal(text: str, *, docstring: bool = False) -> str:
    if docstring and '"""' not in text and "\\" not in text and not text.endswith('"'):
        return f'"""{text}"""'
    return repr(text)


def _read_learnable_pg(url: str, op_id: str) -> tuple[OperationRow, list[StepRow]] | None:
    """Return an operation and its steps from the PostgreSQL store at ``url``, or None.

    :raises StoreError: the database cannot be reached.
    """
    import anyio

    from agentd.store.postgres import PostgresStore

    async def read() -> tuple[OperationRow, list[StepRow]] | None:
        store = PostgresStore(url, pool_size=1)
        await store.open()
        try:
            op = await store.ops.get_operation(op_id)
            return None if op is None else (op, await store.ops.list_steps(op_id))
        finally:
            await store.close()

    return anyio.run(read)


def learn(
    database: Path | str,
    op_id: str,
    name: str,
    folder: Path,
    params: Mapping[str, str],
) -> Path:
    """Write the workflow learned from ``op_id`` as ``folder/test_NAME.py``; return its path.

    :raises InvalidArgument: a bad name or parameter.
    :raises NotFound: no such operation or store.
    :raises InvalidState: not a completed task operation.
    :raises AlreadyExists: the file exists (it is never overwritten).
    """
    if not _NAME.fullmatch(name) or name == TASK_WORKFLOW:
        raise InvalidArgument(
            f"workflow name {name!r}: lowercase letters, digits and '_', starting with a "
            f"letter, and not {TASK_WORKFLOW!r}"
        )
    for key, value in params.items():
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", key) or not value:
            raise InvalidArgument(f"--param {key}={value!r}: a lowercase name and a value")
    if isinstance(database, str):
        found = _read_learnable_pg(database, op_id)
    elif not database.is_file():
        raise NotFound(f"no store at {database}")
    else:
        try:
            found = read_learnable(str(database), op_id)
        except Exception as exc:  # sqlite3.Error, and a store of another schema
            raise InvalidArgument(f"cannot read operations from {database}: {exc}") from exc
    if found is None:
        raise NotFound(f"unknown operation {op_id!r}")
    op, rows = found
    if "account" in params and params["account"] != op.account:
        raise InvalidArgument(f"--param account must be the operation's account {op.account!r}")
    text = render_test(name, op, learned_steps(op, rows, params), params)
    path = folder / f"test_{name}.py"
    try:
        write_atomically(path, text, replace=False)
    except FileExistsError:
        raise AlreadyExists(f"{path} exists: choose another --name or remove it") from None
    return path


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``learn`` to ``agentd kb``'s subcommands."""
    text = (
        "Write a completed model-planned operation as a workflow test into your workflows "
        "folder, for review (then `agentd kb build`)."
    )
    p = sub.add_parser(
        "learn",
        help=text,
        description=text,
        epilog='Example: agentd kb learn op_0123 --name add_note_task --param note="Call back"',
    )
    p.add_argument("op_id", help="a completed operation started with agentctl op run --task")
    p.add_argument("--name", required=True, help="the workflow's name (test_NAME.py)")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="make VALUE a parameter NAME wherever it appears (repeatable)",
    )
    p.add_argument(
        "--into", type=Path, metavar="DIR", help="default: the first [browser] workflow_dirs"
    )
    p.add_argument("--config", metavar="PATH", help="agentd's configuration")


def main(args: argparse.Namespace) -> int:
    """Run ``agentd kb learn``."""
    from agentd.config import load_settings

    try:
        settings = load_settings(args.config)
        params: dict[str, str] = {}
        for pair in args.param:
            key, sep, value = pair.partition("=")
            if not sep:
                raise InvalidArgument(f"--param wants NAME=VALUE, got {pair!r}")
            params[key.strip()] = value
        folder = args.into or next(iter(settings.browser.workflow_dirs), None)
        if folder is None:
            raise InvalidArgument(
                "no workflows folder: set [browser] workflow_dirs or give --into DIR"
            )
        store = settings.store.url or settings.database_path
        path = learn(store, args.op_id, args.name, Path(folder), params)
    except AgentdError as exc:
        print(f"agentd kb learn: error: {exc.message}", file=sys.stderr)
        return 1
    print(f"wrote {path}: review it, then run `agentd kb build` to add it to the knowledge base")
    return 0
