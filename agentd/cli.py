"""agentd: the daemon's command line.

``agentd serve`` runs the daemon in the foreground (systemd's way);
``agentd demo`` shows the product doing its job on an embedded default;
the rest are tools around them. Exit status 78 means invalid configuration:
nothing was started and nothing was written.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from agentd import __version__
from agentd.errors import AgentdError, ConfigInvalid

EXIT_CONFIG = 78
DAEMON_UMASK = 0o027


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _load(config: str | None):  # type: ignore[no-untyped-def]
    from agentd.config import load_settings

    return load_settings(config)


def cmd_serve(ns: argparse.Namespace) -> int:
    """Run the daemon in the foreground until SIGTERM."""
    import anyio

    from agentd.daemon import run_daemon
    from agentd.logs import setup_logging, shutdown_logging

    settings = _load(ns.config)
    # Before anything is created: the state folder, the database, its WAL and
    # the logs are nobody else's business, whatever umask the daemon was started
    # with (systemd's UMask= is the same; outside systemd the shell's 022 is not).
    os.umask(DAEMON_UMASK)
    try:
        log_file = setup_logging(settings)
    except OSError as exc:
        print(
            f"agentd: cannot create log folder {settings.resolved_log_dir}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    try:
        return anyio.run(lambda: run_daemon(settings, log_file=log_file))
    except AgentdError as exc:
        from loguru import logger

        logger.error("agentd could not start: {}", exc.message)
        return EXIT_CONFIG if isinstance(exc, ConfigInvalid) else 1
    finally:
        shutdown_logging()


def cmd_check_config(ns: argparse.Namespace) -> int:
    """Validate the configuration and print what the daemon would use.

    The resolved values go to stdout as JSON; the verdict (OK, or what is
    wrong on this host) is the last line, on stderr, so the JSON stays
    readable by a program.
    """
    import json

    from agentd.config import check_host
    from agentd.core.store_url import redact_url

    settings = _load(ns.config)
    check_host(settings)
    source = str(settings.config_file) if settings.config_file else "built-in defaults"
    data = settings.model_dump(mode="json")
    data["config_file"] = str(settings.config_file) if settings.config_file else None
    data["socket_path"] = str(settings.resolved_socket_path)
    data["log_dir"] = str(settings.resolved_log_dir)
    # A password in the store URL is never printed.
    data["store"]["url"] = redact_url(settings.store.url)
    data["database"] = (
        redact_url(settings.store.url) if settings.store.url else str(settings.database_path)
    )
    # A file mode reads as octal, as it is written in TOML (0o660), not as 432.
    data["control"]["socket_mode"] = f"0o{settings.control.socket_mode:o}"
    print(json.dumps(data, indent=2), flush=True)
    print(f"agentd: configuration OK ({source})", file=sys.stderr)
    return 0


def cmd_demo(ns: argparse.Namespace) -> int:
    """Run the demo."""
    from agentd.demo import run_demo

    return run_demo(state_dir=ns.dir, keep_running=ns.keep_running)


def cmd_backup(ns: argparse.Namespace) -> int:
    """Copy the store consistently while the daemon runs."""
    import json
    from pathlib import Path

    from agentd.store.backup import backup_database
    from agentd.store.pg_backup import backup_postgres

    settings = _load(ns.config)
    if settings.store.url:
        result = backup_postgres(settings.store.url, Path(ns.dest))
    else:
        result = backup_database(settings.database_path, Path(ns.dest), progress=not ns.json)
    if ns.json:
        print(json.dumps(result, indent=2))
    elif settings.store.url:
        print(
            f"backed up {result['source']} to {result['backup']} ({result['bytes']} bytes, "
            f"{result['format']})"
        )
    else:
        print(
            f"backed up {result['source']} to {result['backup']} ({result['bytes']} bytes, "
            f"schema v{result['schema_version']}, {result['audit_records']} audit records)"
        )
    return 0


def _reference(name: str) -> str:
    # Not choices=: argparse 3.11 checks an empty nargs="*" list against them.
    if name not in ("config", "agentctl", "agentd"):
        raise argparse.ArgumentTypeError(f"{name!r} is not config, agentctl or agentd")
    return name


def cmd_docs(ns: argparse.Namespace) -> int:
    """Write (or check) the generated references under docs/."""
    from pathlib import Path

    from agentd import docgen

    folder = Path(ns.dir) if ns.dir else docgen.DOCS_DIR
    return docgen.main(ns.which, folder, check=ns.check)


def _demo_site(argv: list[str]) -> int:
    from agentd.demosite.cli import main as demo_site_main

    return demo_site_main(argv)


def _kb(argv: list[str]) -> int:
    from agentd.kb import main as kb_main

    return kb_main(argv)


def _vault(argv: list[str]) -> int:
    from agentd.vault import main as vault_main

    return vault_main(argv)


# Tools with their own argument parsers: everything after the name is theirs.
PASSTHROUGH = {
    "demo-site": (
        _demo_site,
        "Serve the demo back-office in the foreground.",
        "agentd demo-site --port 8765",
    ),
    "kb": (_kb, "Build or check the knowledge base extracted from workflows/.", "agentd kb build"),
    "vault": (
        _vault,
        "Create a vault key file or show a key's fingerprint.",
        "agentd vault init-key /etc/agentd/vault.key",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser."""
    parser = _Parser(prog="agentd", description="The autonomous-operations daemon.")
    parser.add_argument("--version", action="version", version=f"agentd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser(
        "serve",
        help="Run the daemon in the foreground (systemd's way).",
        description="Run the daemon in the foreground until SIGTERM or SIGINT.",
        epilog="Example: agentd serve --config /etc/agentd/agentd.toml",
    )
    p.add_argument(
        "--config",
        metavar="PATH",
        help="configuration file (default: $AGENTD_CONFIG, "
        "then /etc/agentd/agentd.toml, else built-in defaults)",
    )
    p.set_defaults(run=cmd_serve)

    p = sub.add_parser(
        "check-config",
        help="Validate the configuration and print it resolved.",
        description="Validate the configuration (and that the groups it names exist on this "
        "host) and print it resolved, as JSON; then 'configuration OK' on stderr. Exit status "
        "78 when it is invalid.",
        epilog="Example: agentd check-config --config config/agentd.toml",
    )
    p.add_argument("--config", metavar="PATH", help="configuration file")
    p.set_defaults(run=cmd_check_config)

    p = sub.add_parser(
        "demo",
        help="Show the product doing its job, offline, on a local state folder.",
        description="Start the daemon on a demo state folder and show what it does.",
        epilog="Example: agentd demo --keep-running",
    )
    p.add_argument(
        "--dir",
        default="demo-state",
        metavar="PATH",
        help="demo state folder (default ./demo-state; wiped at start)",
    )
    p.add_argument(
        "--keep-running",
        action="store_true",
        help="leave the daemon running for exploration with agentctl",
    )
    p.set_defaults(run=cmd_demo)

    p = sub.add_parser(
        "backup",
        help="Copy the store while the daemon runs (SQLite online backup, or pg_dump).",
        description="Write a consistent, verified copy of the database to DEST (atomically); "
        "on PostgreSQL a pg_dump custom-format archive. The vault key is not included.",
        epilog="Example: agentd backup /var/backups/agentd/agentd-$(date +%%F).sqlite3",
    )
    p.add_argument("dest", metavar="DEST", help="backup file (or an existing folder)")
    p.add_argument("--config", metavar="PATH", help="configuration file")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=cmd_backup)

    p = sub.add_parser(
        "docs",
        help="Write the configuration and command references under docs/.",
        description="Generate docs/configuration.md from the settings model and "
        "docs/agentctl.md, docs/agentd.md from the parsers (default: all three).",
        epilog="Example: agentd docs --check",
    )
    p.add_argument(
        "which",
        nargs="*",
        type=_reference,
        metavar="{config,agentctl,agentd}",
        help="which reference (default: all)",
    )
    p.add_argument("--dir", metavar="DIR", help="output folder (default: the project's docs/)")
    p.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file is out of date"
    )
    p.set_defaults(run=cmd_docs)

    for name, (_, summary, example) in PASSTHROUGH.items():
        p = sub.add_parser(
            name, help=summary, description=summary, epilog=f"Example: {example}", add_help=False
        )
        p.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the agentd command line; return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in PASSTHROUGH:
        try:
            return PASSTHROUGH[args[0]][0](args[1:])
        except AgentdError as exc:
            print(f"agentd {args[0]}: {exc.message}", file=sys.stderr)
            return EXIT_CONFIG if isinstance(exc, ConfigInvalid) else 1
    ns = build_parser().parse_args(args)
    try:
        return int(ns.run(ns))
    except ConfigInvalid as exc:
        print(f"agentd: {exc.message}", file=sys.stderr)
        return EXIT_CONFIG
    except AgentdError as exc:
        print(f"agentd: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
