"""agentctl: the operator's command-line client of the control socket.

Exit status: 0 success, 1 the daemon answered with an error, 2 usage error
(including a configuration file that is missing or not TOML), 3 the daemon
is unreachable, 5 the daemon was too busy to take the request (BUSY: nothing
was done; try again). ``--json`` prints machine-readable output with
stable field names: the result object on success, ``{"error": {...}}`` on a
daemon error.

Imports stay in the standard library so the client starts fast.
"""

from __future__ import annotations

import argparse
import json
import sys

from agentd import __version__
from agentd.ctl import execution as execution_commands
from agentd.ctl import gate as gate_commands
from agentd.ctl import governance as governance_commands
from agentd.ctl import ops as ops_commands
from agentd.ctl import proactive as proactive_commands
from agentd.ctl import render
from agentd.ctl.client import ConfigUnreadable, Unreachable, call, resolve_socket
from agentd.errors import AgentdError, ErrorCode

TYPE_CHECKING = False  # typing itself is not imported: agentctl must start fast
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, NoReturn

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
EXIT_BUSY = 5  # 4 is audit verify's broken chain


class Session:
    """What a subcommand needs: the socket, output mode, and a caller."""

    # A plain class: dataclasses would cost agentctl several ms of start-up.
    def __init__(self, socket: str, json: bool, timeout: float) -> None:
        self.socket = socket
        self.json = json
        self.timeout = timeout

    def call(
        self,
        cmd: str,
        args: dict[str, Any] | None = None,
        on_event: Callable[[Any], None] | None = None,
        upload: Any = None,
    ) -> Any:
        """Send one request to the daemon (``upload``: a binary file sent after it)."""
        clean = {k: v for k, v in (args or {}).items() if v is not None}
        return call(self.socket, cmd, clean, timeout=self.timeout, on_event=on_event, upload=upload)

    def out(self, result: Any, human: Callable[[Any], str]) -> None:
        """Print ``result`` as JSON or through ``human``."""
        if self.json:
            print(render.json_safe(json.dumps(result, indent=2, ensure_ascii=False, default=str)))
        else:
            text = human(result)
            if text:
                # Values came from clients, imports and back-offices: never let
                # one drive the terminal (render.terminal_safe).
                print(render.terminal_safe(text))


if TYPE_CHECKING:
    Runner = Callable[[Session, argparse.Namespace], int]


def json_flag(p: argparse.ArgumentParser) -> None:
    """Accept ``--json`` after the command too (``agentctl status --json``)."""
    # SUPPRESS: when absent here, the global --json keeps its value.
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _seconds(text: str) -> float:
    """Read a positive, finite number of seconds (argparse turns the error into exit 2)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _human_status(r: dict[str, Any]) -> str:
    lines = {
        "version": r.get("version"),
        "state": r.get("state"),
        "pid": r.get("pid"),
        "uptime": f"{r.get('uptime_s', 0):.1f} s",
        "schema version": f"{r.get('schema_version')} (latest {r.get('latest_schema_version')})",
        "store": f"{r['store']['backend']} {r['store']['location']} "
        f"(journal {r['store']['journal_mode']}, synchronous {r['store']['synchronous']})",
        "config file": r.get("config_file") or "(built-in defaults)",
        "state folder": r.get("state_dir"),
        "socket": r.get("socket_path"),
        "log file": r.get("log_file"),
    }
    gov = r.get("governance")
    if gov:
        lines["governance"] = (
            f"autonomy {gov['level']}; kill switch {'ON' if gov['kill_switch'] else 'off'}; "
            f"breakers tripped: {', '.join(gov['breakers_tripped']) or 'none'}; paused: "
            f"{', '.join(gov['paused_action_types']) or 'none'}"
        )
    browser = r.get("browser")
    if browser:
        sandbox = {True: "on", False: "OFF", None: "refused"}[browser.get("sandbox")]
        lines["browser sandbox"] = f"{sandbox} ({browser.get('sandbox_reason')})"
    integrity = r["store"].get("integrity") or {}
    if integrity:
        lines["integrity"] = integrity.get("state")
    if r["store"].get("write_errors"):
        last = r["store"]["last_write_error"]
        lines["write errors"] = (
            f"{r['store']['write_errors']} (last at {last['at']}: {last['error']})"
        )
    if r.get("problems"):
        lines["PROBLEMS"] = "\n".join(r["problems"])
    known = {
        "browser",
        "problems",
        "version",
        "state",
        "pid",
        "uptime_s",
        "schema_version",
        "latest_schema_version",
        "store",
        "config_file",
        "state_dir",
        "socket_path",
        "log_file",
        "peer",
        "started_at",
        "governance",
    }
    extra = {k: v for k, v in r.items() if k not in known}
    return render.kv({**lines, **extra})


def cmd_status(s: Session, ns: argparse.Namespace) -> int:
    s.out(s.call("status"), _human_status)
    return EXIT_OK


def cmd_ping(s: Session, ns: argparse.Namespace) -> int:
    s.out(s.call("ping"), lambda r: f"pong ({r['time']})")
    return EXIT_OK


def cmd_completion(s: Session, ns: argparse.Namespace) -> int:
    from agentd.ctl import completion  # only this command pays for it

    return completion.run(ns.shell)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand."""
    parser = _Parser(
        prog="agentctl",
        description="Control a running agentd over its Unix socket.",
        epilog="Example: agentctl status",
    )
    parser.add_argument("--version", action="version", version=f"agentctl {__version__}")
    parser.add_argument(
        "--socket",
        metavar="PATH",
        help="control socket (default: $AGENTD_SOCKET_PATH, then the configuration)",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="configuration file to read the socket path from (default: $AGENTD_CONFIG)",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=30.0,
        metavar="S",
        help="seconds to wait for the daemon (default 30)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def add(name: str, run: Runner, summary: str, example: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=summary, description=summary, epilog=f"Example: {example}")
        p.set_defaults(run=run)
        json_flag(p)
        return p

    add(
        "status",
        cmd_status,
        "Show the daemon's version, state, uptime, schema and paths.",
        "agentctl --json status",
    )
    add("ping", cmd_ping, "Check that the daemon answers.", "agentctl ping")

    def group(name: str, summary: str) -> Callable[..., argparse.ArgumentParser]:
        g = sub.add_parser(name, help=summary, description=summary)
        inner = g.add_subparsers(dest=f"{name}_command", metavar="COMMAND", parser_class=_Parser)
        inner.required = True

        def add_inner(
            sub_name: str, run: Runner, sub_summary: str, example: str
        ) -> argparse.ArgumentParser:
            if g.epilog is None:  # a group's --help shows its first subcommand's example
                g.epilog = f"Example: {example}"
            p = inner.add_parser(
                sub_name, help=sub_summary, description=sub_summary, epilog=f"Example: {example}"
            )
            p.set_defaults(run=run)
            json_flag(p)
            return p

        return add_inner

    gate_commands.register(add, group)
    proactive_commands.register(add, group)
    ops_commands.register(add, group)
    execution_commands.register(add, group)
    governance_commands.register(add, group)
    p = add(
        "completion",
        cmd_completion,
        "Print a shell completion script for agentctl.",
        "agentctl completion bash | sudo tee /etc/bash_completion.d/agentctl",
    )
    p.add_argument("shell", choices=("bash",), help="the shell (bash)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run agentctl; return the exit status."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        socket = resolve_socket(ns.socket, ns.config)
    except ConfigUnreadable as exc:
        print(render.terminal_safe(f"agentctl: {exc}"), file=sys.stderr)
        return EXIT_USAGE
    session = Session(socket=socket, json=ns.json, timeout=ns.timeout)
    try:
        return int(ns.run(session, ns))
    except Unreachable as exc:
        if session.json:
            print(
                json.dumps(
                    {"error": {"name": "UNREACHABLE", "message": str(exc), "socket": str(exc.path)}}
                )
            )
        print(f"agentctl: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except AgentdError as exc:
        if session.json:
            print(render.json_safe(json.dumps({"error": exc.to_dict()}, ensure_ascii=False)))
        print(
            render.terminal_safe(
                f"agentctl: error {exc.code.name} ({int(exc.code)}): {exc.message}"
            ),
            file=sys.stderr,
        )
        return EXIT_BUSY if exc.code == ErrorCode.BUSY else EXIT_ERROR
    except gate_commands.UsageError as exc:
        print(f"agentctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (agentctl ... | head): stop quietly, as other tools do.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
