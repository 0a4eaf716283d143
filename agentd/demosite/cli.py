"""``agentd demo-site``: serve the demo back-office in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType

from agentd.demosite.failures import FailureMode
from agentd.demosite.server import DemoSite
from agentd.errors import AgentdError

DEFAULT_PORT = 8765
PASSWORD_ENV = "AGENTD_DEMO_ADMIN_PASSWORD"


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``agentd demo-site``."""
    parser = argparse.ArgumentParser(
        prog="agentd demo-site",
        description="Serve the demo back-office (store admin and CRM) in the foreground.",
        epilog="Example: agentd demo-site --port 8765 --fail /admin/products --fail-mode slow",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any)"
    )
    parser.add_argument("--admin-user", default="admin", help="admin login name")
    parser.add_argument(
        "--admin-password",
        default=os.environ.get(PASSWORD_ENV),
        help=f"admin password (default: ${PASSWORD_ENV}, else generated and printed)",
    )
    parser.add_argument("--control-token", help="token for /__control/* (default: generated)")
    parser.add_argument(
        "--account",
        action="append",
        default=[],
        metavar="ID[=NAME]",
        help="add a CRM account besides the seeded ones (repeatable)",
    )
    parser.add_argument(
        "--fail",
        action="append",
        default=[],
        metavar="PATH",
        help="make requests under PATH fail (repeatable)",
    )
    parser.add_argument(
        "--fail-mode",
        choices=[m.value for m in FailureMode],
        default="error",
        help="error page, slow response or dropped connection (default: error)",
    )
    parser.add_argument(
        "--fail-delay",
        type=float,
        default=2.0,
        metavar="S",
        help="delay of a slow response in seconds (default 2)",
    )
    parser.add_argument("--fail-status", type=int, default=500, help="status of the error page")
    parser.add_argument(
        "--fail-times",
        type=int,
        default=None,
        metavar="N",
        help="fail only the first N matching requests (default: always)",
    )
    return parser


def _accounts(specs: list[str]) -> list[tuple[str, str]]:
    out = []
    for spec in specs:
        account_id, _, name = spec.partition("=")
        out.append((account_id.strip(), name.strip() or account_id.strip().title()))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the demo site until SIGINT or SIGTERM; return the exit status."""
    args = build_parser().parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    try:
        site = DemoSite(
            args.host,
            args.port,
            args.admin_user,
            args.admin_password,
            accounts=_accounts(args.account),
            control_token=args.control_token,
        )
        for path in args.fail:
            site.fail(
                path,
                args.fail_mode,
                delay_s=args.fail_delay,
                status=args.fail_status,
                times=args.fail_times,
            )
        site.start()
    except AgentdError as exc:
        print(f"agentd demo-site: error: {exc.message}", file=sys.stderr)
        return 2
    # Always use signal.signal's return value to restore the previous handlers later.
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"Demo back-office serving at {site.url}", flush=False)
        print(f"  admin user:     {site.admin_user}")
        print(f"  admin password: {site.admin_password}")
        print(f"  control token:  {site.control_token}")
        for rule in site.failures.rules():
            print(f"  failing:        {rule.path_prefix} ({rule.mode.value})")
        print("Press Ctrl+C to stop.", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        site.stop()
    print("Demo back-office stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
