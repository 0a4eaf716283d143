"""The daemon: the one place that wires adapters to services and runs them.

Start-up: open the store (migrations), bind the control socket, tell systemd
READY=1. Then one task group holds the control server, the watchdog and the
workers. SIGTERM or SIGINT: tell systemd STOPPING=1, stop intake, drain work
in flight for up to ``daemon.shutdown_timeout_s``, cancel the rest, close.
"""

from __future__ import annotations

import gc
import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
from loguru import logger

from agentd import __version__
from agentd.commands import Dispatcher
from agentd.commands.registry import AccessPolicy
from agentd.config import Settings, load_settings
from agentd.core.audit import AuditEvent, AuditEventType
from agentd.core.gate import GatePolicy
from agentd.errors import AgentdError, ConfigInvalid, StoreError
from agentd.kb import load_knowledge_base
from agentd.llm import make_model
from agentd.notifiers import FanoutNotifier, FileNotifier, LogNotifier, Notifier, WebhookNotifier
from agentd.policy import gate_policy
from agentd.sdnotify import SystemdNotifier
from agentd.server import ControlServer
from agentd.services.briefings import BriefingWriter
from agentd.services.execution import ExecutionService
from agentd.services.gate import GateService
from agentd.services.governor import Governance
from agentd.services.incidents import EventHub, IncidentService
from agentd.services.operations import OperationsService
from agentd.services.scheduler import ProactiveLoop
from agentd.store.sqlite import SqliteStore
from agentd.vault import Vault, load_key


def _vault(settings: Settings) -> Vault | None:
    """Open the credential vault when a key is configured.

    :raises VaultError: a key is configured but unusable (start-up is refused).
    """
    vault = settings.vault
    if vault.key_file is None and not os.environ.get("CREDENTIALS_DIRECTORY"):
        return None  # no key: secrets commands answer that the vault is off
    return Vault(load_key(key_file=vault.key_file, credential_name=vault.credential_name))


def make_notifier(settings: Settings) -> FanoutNotifier:
    """Return the configured notification channels: file, log, optional webhook."""
    notify = settings.notify
    channels: list[Notifier] = [FileNotifier(notify.resolved_folder(settings.state_dir))]
    if notify.log:
        channels.append(LogNotifier())
    if notify.webhook_url:
        channels.append(WebhookNotifier(notify.webhook_url, notify.webhook_timeout_s))
    return FanoutNotifier(channels)


class App:
    """Everything a command handler or a worker may need, in one place."""

    def __init__(
        self, settings: Settings, store: SqliteStore, *, log_file: Path | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.log_file = log_file
        self.policy: GatePolicy = gate_policy(settings)
        self.gate = GateService(
            store,
            lambda: self.policy,
            approval_ttl=self._approval_ttl,
            max_batch=settings.gate.max_batch,
        )
        model = make_model(settings.llm.llm_settings())
        self.proactive = ProactiveLoop(store, self.gate, lambda: self.settings, model=model)
        browser = settings.browser
        self.operations = OperationsService(
            store,
            browser,
            state_dir=settings.state_dir,
            vault=_vault(settings),
            model=model,
            knowledge_base=lambda: load_knowledge_base(
                browser.knowledge_base, browser.workflows_dir
            ),
        )
        self.events = EventHub()
        self.notifier = make_notifier(settings)
        self.incidents = IncidentService(store, self.notifier, self.events)
        self.execution = ExecutionService(
            store,
            self.operations,
            self.incidents,
            self.events,
            config=lambda: self.settings.execution,
            policy=lambda: self.policy,
            service=lambda: self.settings.browser.default_service,
            briefings=BriefingWriter(
                store,
                lambda: self.settings.state_dir / "briefings",
                lambda: model,
                clock=lambda: datetime.now(UTC),
            ),
        )
        # Governance: breakers hear every published outcome; its tasks join the scheduler.
        self.sd_notifier: SystemdNotifier | None = None
        self.governance = Governance(
            store,
            lambda: self.settings,
            incidents=self.incidents,
            notifier=self.notifier,
            operations=self.operations,
            on_change=self.governance_changed,
        )
        self.events.subscribe(self.governance.breakers.on_event)
        for spec in self.governance.task_specs():
            self.proactive.scheduler.add(spec)
        self.state = "starting"
        self.started_at = datetime.now(UTC)
        self.started_monotonic = time.monotonic()
        self.store_schema = 0
        self._stop = anyio.Event()

    def _approval_ttl(self, tenant: str) -> timedelta:
        return timedelta(hours=self.settings.autonomy.approval_ttl_hours)

    async def reload(self, actor: str) -> dict[str, Any]:
        """Re-read the configuration file and apply its policy.

        A bad file changes nothing: the old policy keeps running and the
        error is returned (and audited). Settings other than policy (paths,
        socket, store) need a restart.

        :raises ConfigInvalid: the new configuration is invalid.
        """
        try:
            settings = load_settings(self.settings.config_file)
            policy = gate_policy(settings)
        except ConfigInvalid as exc:
            await self.audit(
                AuditEvent(AuditEventType.CONFIG_RELOAD_FAILED, actor, None, {"error": exc.message})
            )
            logger.error("reload refused, keeping the running policy: {}", exc.message)
            raise
        self.settings = settings
        await self.governance.autonomy.load()
        self.policy = self.governance.autonomy.overlay(policy, settings)
        self.gate.max_batch = settings.gate.max_batch
        await self.audit(
            AuditEvent(
                AuditEventType.CONFIG_RELOADED,
                actor,
                None,
                {"file": str(settings.config_file) if settings.config_file else None},
            )
        )
        logger.info("configuration reloaded by {}", actor)
        return {
            "reloaded": True,
            "config_file": str(settings.config_file) if settings.config_file else None,
        }

    def request_stop(self, why: str = "requested") -> None:
        """Ask the daemon to shut down as on SIGTERM."""
        if not self._stop.is_set():
            logger.info("shutting down: {}", why)
            self._stop.set()

    async def audit(self, *events: AuditEvent) -> None:
        """Append events to the audit trail in one transaction."""
        await self.store.append_audit(list(events), datetime.now(UTC))

    def status_line(self) -> str:
        """Return the one-line summary systemd shows as the service status."""
        return f"{self.state}; schema v{self.store_schema}; {self.governance.status_text()}"

    def governance_changed(self) -> None:
        """Apply governance's level and allowlist to the gate's policy; refresh STATUS=."""
        self.policy = self.governance.autonomy.overlay(gate_policy(self.settings), self.settings)
        if self.sd_notifier is not None and self.state == "running":
            self.sd_notifier.notify(STATUS=self.status_line())


_settled = False


def settle_after_startup() -> None:
    """Take what start-up built out of the garbage collector's rounds (once per process).

    Imported modules, the configuration and the wired app live as long as the
    process: some 200,000 objects once the LLM and browser clients are
    imported. Left in the oldest generation, every full collection walks them
    all again, pausing the event loop for about 100 ms each time, roughly
    every 1,500 gate decisions under load. ``gc.freeze`` moves them to a
    generation that is never collected; what is allocated later is collected
    as usual.
    """
    global _settled
    if not _settled:
        _settled = True
        gc.collect()
        gc.freeze()


def build_app(settings: Settings, *, log_file: Path | None = None) -> App:
    """Create the app and its adapters (nothing is opened yet)."""
    store = SqliteStore(
        settings.database_path,
        synchronous=settings.store.synchronous,
        busy_timeout_ms=settings.store.busy_timeout_ms,
    )
    return App(settings, store, log_file=log_file)


def build_dispatcher(app: App) -> Dispatcher:
    """Create the dispatcher with the access rules from the settings."""
    control = app.settings.control
    policy = AccessPolicy(
        daemon_uid=os.getuid(), group=control.group, approvers_group=control.approvers_group
    )
    return Dispatcher(app, policy)


async def _watchdog(app: App, notifier: SystemdNotifier, interval: float) -> None:
    """Ping systemd's watchdog only while the loop and the store are healthy."""
    timeout = app.settings.daemon.health_timeout_s
    while True:
        started = time.monotonic()
        await anyio.sleep(interval)
        lag = time.monotonic() - started - interval
        try:
            with anyio.fail_after(timeout):
                await app.store.health_check()
        except (TimeoutError, StoreError) as exc:
            logger.error("health check failed, withholding the watchdog ping: {}", exc)
            notifier.notify(STATUS=f"unhealthy: {exc}")
            continue
        if lag > interval:
            logger.warning("event loop lagged {:.1f}s, withholding the watchdog ping", lag)
            continue
        notifier.notify(WATCHDOG=1)


# While the store opens, the service manager is asked for more start-up time
# this often: a migration may rewrite large tables (about 10 s per 100,000
# intents for schema 7), longer than the unit's TimeoutStartSec=.
OPEN_EXTEND_EVERY_S = 10.0


async def open_store(
    store: SqliteStore, notifier: SystemdNotifier, every_s: float = OPEN_EXTEND_EVERY_S
) -> None:
    """Open ``store``; while that takes long, keep asking for more start-up time.

    Every ``every_s`` the service manager gets ``EXTEND_TIMEOUT_USEC`` (three
    times that) and a STATUS line, so a start that is making progress is not
    killed, and one that hangs still times out.

    :raises StoreError: the store cannot be opened.
    """

    async def extend() -> None:
        waited = 0.0
        while True:
            await anyio.sleep(every_s)
            waited += every_s
            notifier.notify(
                EXTEND_TIMEOUT_USEC=int(every_s * 3_000_000),
                STATUS=f"opening store: {waited:.0f} s so far (a migration can take a while)",
            )

    failure: Exception | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(extend)
        try:
            await store.open()
        except Exception as exc:  # raised as is below, not in a task group's exception group
            failure = exc
        tg.cancel_scope.cancel()
    if failure is not None:
        raise failure


async def run_daemon(
    settings: Settings,
    *,
    notifier: SystemdNotifier | None = None,
    log_file: Path | None = None,
    ready: Callable[[App], None] | None = None,
) -> int:
    """Run until SIGTERM or SIGINT; return the exit status.

    :raises AgentdError: start-up failed (store, socket); nothing was left running.
    """
    notifier = notifier or SystemdNotifier()
    app = build_app(settings, log_file=log_file)
    dispatcher = build_dispatcher(app)
    control = settings.control
    server = ControlServer(
        settings.resolved_socket_path,
        dispatcher,
        mode=control.socket_mode,
        group=control.group,
        max_message_bytes=control.max_message_bytes,
        read_timeout_s=control.read_timeout_s,
        max_connections=control.max_connections,
        max_upload_bytes=control.max_upload_bytes,
    )
    notifier.notify(STATUS="opening store")
    await open_store(app.store, notifier)
    try:
        info = await app.store.info()
        app.store_schema = info.schema_version
        await app.gate.recover()
        await app.operations.recover()
        await app.execution.recover()
        app.sd_notifier = notifier
        await app.governance.start()
        app.governance_changed()
        await server.bind()
    except BaseException:
        app.gate.close()
        await app.store.close()
        raise
    settle_after_startup()
    # Signals are caught from here on, so a SIGTERM right after READY=1
    # still leads to a clean stop rather than the default termination.
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        try:
            await app.audit(
                AuditEvent(
                    AuditEventType.DAEMON_STARTED,
                    actor="agentd",
                    data={
                        "version": __version__,
                        "pid": os.getpid(),
                        "schema": info.schema_version,
                    },
                )
            )
            app.state = "running"
            logger.info(
                "agentd {} serving on {} (store {}, schema v{})",
                __version__,
                server.path,
                info.location,
                info.schema_version,
            )
            notifier.notify(READY=1, STATUS=app.status_line(), MAINPID=os.getpid())
            if ready is not None:
                ready(app)
            await _serve(app, server, notifier, signals)
        finally:
            app.state = "stopped"
            with anyio.CancelScope(shield=True):
                await server.stop_intake()
                try:
                    await app.audit(AuditEvent(AuditEventType.DAEMON_STOPPED, actor="agentd"))
                except AgentdError as exc:
                    logger.error("could not audit the stop: {}", exc)
                await app.proactive.aclose()
                await app.operations.close()
                app.gate.close()
                await app.store.close()
            notifier.close()
            logger.info("agentd stopped")
    return 0


async def _serve(app: App, server: ControlServer, notifier: SystemdNotifier, signals: Any) -> None:
    timeout = app.settings.daemon.shutdown_timeout_s
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        tg.start_soon(app.gate.run)
        # The scheduler runs the proactive tasks and the housekeeping
        # (approval expiry, idempotency pruning, the inbox).
        await tg.start(app.proactive.run)
        tg.start_soon(app.operations.run)
        tg.start_soon(app.execution.run)
        if notifier.watchdog_interval:
            tg.start_soon(_watchdog, app, notifier, notifier.watchdog_interval)

        async def on_signal() -> None:
            async for signum in signals:
                app.request_stop(f"received {signal.Signals(signum).name}")

        tg.start_soon(on_signal)
        await app._stop.wait()
        app.state = "stopping"
        notifier.notify(STOPPING=1, STATUS="stopping")
        await server.stop_intake()
        if not await server.drain(timeout):
            logger.warning("requests still running after {:g}s; cancelling them", timeout)
        tg.cancel_scope.cancel()
