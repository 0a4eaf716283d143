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
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
from loguru import logger

from agentd import __version__
from agentd.browser.playwright_browser import PlaywrightBrowser
from agentd.browser.task import AgentModeSettings
from agentd.commands import Dispatcher
from agentd.commands.registry import AccessPolicy
from agentd.config import Settings, load_settings
from agentd.core.audit import AuditEvent, AuditEventType
from agentd.core.policy import GatePolicy
from agentd.errors import AgentdError, ConfigInvalid, StoreError, VaultError
from agentd.identity import identify
from agentd.kb import KnowledgeBase, load_knowledge_base
from agentd.llm import make_model
from agentd.notifiers import (
    FanoutNotifier,
    FileNotifier,
    LogNotifier,
    NotificationKind,
    Notifier,
    Severity,
    WebhookNotifier,
)
from agentd.policy import gate_policy
from agentd.sdnotify import SystemdNotifier
from agentd.server import ControlServer
from agentd.services.approvals import ApprovalService
from agentd.services.briefings import BriefingWriter
from agentd.services.consents import ConsentsService
from agentd.services.execution import ExecutionService
from agentd.services.execution_views import ExecutionViews
from agentd.services.gate import GateService
from agentd.services.governor import Governance
from agentd.services.incidents import EventHub, IncidentService
from agentd.services.operations import OperationsService
from agentd.services.rollback import RollbackService
from agentd.services.scheduler import ProactiveLoop
from agentd.services.scope import notify_quietly
from agentd.services.secrets import SecretsService
from agentd.services.state_watch import StateWatcher
from agentd.statelock import StateLock
from agentd.store.base import StoreInfo
from agentd.store.engines import AnyStore, make_store
from agentd.store.gov_sql import STATE_CHANNEL
from agentd.store.postgres import ChangeListener, PostgresStore
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


def vault_key_source(settings: Settings) -> str:
    """Say where the vault key comes from, as :func:`agentd.vault.load_key` picks it."""
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if credentials:
        credential = Path(credentials) / settings.vault.credential_name
        if credential.exists():
            return f"systemd credential {credential}"
    return f"key file {settings.vault.key_file}"


async def check_vault_key(app: App) -> str | None:
    """Compare the configured key with the one the stored secrets were sealed with.

    Every secret records the fingerprint of the key that sealed it. A key
    that sealed none of them is the wrong key: start-up is refused, naming
    both. Some secrets under another key (a key changed with secrets left
    behind): those cannot be opened; the warning is returned (for status).

    :raises VaultError: secrets exist and none was sealed with the configured key.
    """
    counts = await app.store.ops.secrets_by_key()
    if not counts:
        return None
    total = sum(counts.values())
    vault = app.operations.vault
    if vault is None:
        warning = (
            f"{total} stored secrets cannot be used: no vault key is configured "
            f"(they were sealed with key fingerprint {', '.join(counts)})"
        )
        logger.warning("{}", warning)
        return warning
    source = vault_key_source(app.settings)
    others = {fp: n for fp, n in counts.items() if fp != vault.fingerprint}
    if not others:
        return None
    sealed = ", ".join(f"{fp} ({n} secrets)" for fp, n in others.items())
    if vault.fingerprint not in counts:
        raise VaultError(
            f"wrong vault key: the {source} has fingerprint {vault.fingerprint}, but the "
            f"stored secrets were sealed with key fingerprint {sealed}; configure the key "
            f"they were sealed with (`agentd vault fingerprint PATH` shows a key file's)",
            details={"key_fingerprint": vault.fingerprint, "sealed_with": sorted(others)},
        )
    warning = (
        f"{sum(others.values())} of {total} stored secrets were sealed with another vault key "
        f"({sealed}) than the {source} (fingerprint {vault.fingerprint}); they cannot be "
        f"opened until set again"
    )
    logger.warning("{}", warning)
    return warning


#: A database file up to this size is checked (``PRAGMA quick_check``) before
#: the daemon starts; a larger one right after READY, while it serves.
QUICK_CHECK_INLINE_BYTES = 256 * 1024 * 1024


def _damage_text(problems: list[str]) -> str:
    shown = "; ".join(problems[:3])
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return f"{shown}{more}"


async def check_integrity(app: App) -> list[str]:
    """Run the store's quick check; record the outcome in ``app.integrity``.

    A damaged store is put in a state that refuses every write (reads and
    status go on), and the damage is logged and notified.
    """
    store = app.store
    if not isinstance(store, SqliteStore):
        # PostgreSQL checks its own pages; there is no file of agentd's to check.
        app.integrity = {"state": "ok", "checked_at": None, "problems": [], "by": store.backend}
        return []
    began = time.monotonic()
    app.integrity = {"state": "running", "started_at": datetime.now(UTC).isoformat()}
    try:
        problems = await store.quick_check()
    except StoreError as exc:
        app.integrity = {"state": "failed", "error": exc.message}
        logger.error("integrity check: {}", exc.message)
        return []
    app.integrity = {
        "state": "corrupt" if problems else "ok",
        "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "took_s": round(time.monotonic() - began, 3),
        "problems": problems,
    }
    if problems:
        damage = _damage_text(problems)
        store.corrupt = damage
        logger.critical("database {} is damaged, writes are refused: {}", store.path, damage)
        await notify_quietly(
            app.notifier,
            Severity.CRITICAL,
            NotificationKind.STORE,
            f"agentd's database {store.path} is damaged; writes are refused",
            f"PRAGMA quick_check found: {damage}. Stop agentd and restore a backup.",
        )
    else:
        logger.info("integrity check of {}: ok in {:.2f} s", store.path, app.integrity["took_s"])
    return problems


async def check_integrity_at_start(app: App) -> bool:
    """Check a small store before it opens; return False if it is left for after READY.

    :raises StoreError: the store is damaged (start-up is refused: nothing was written).
    """
    if not isinstance(app.store, SqliteStore):
        await check_integrity(app)
        return True
    path = app.store.path
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        app.integrity = {"state": "ok", "checked_at": None, "problems": [], "new": True}
        return True
    if size > QUICK_CHECK_INLINE_BYTES:
        app.integrity = {"state": "pending", "size_bytes": size}
        return False
    problems = await check_integrity(app)
    if problems:
        raise StoreError(
            f"database {path} is damaged (PRAGMA quick_check: {_damage_text(problems)}); "
            f"refusing to start: restore a backup (see the operator guide)",
            details={"problems": problems},
        )
    return True


def make_notifier(settings: Settings, origin: Mapping[str, str] | None = None) -> FanoutNotifier:
    """Return the configured notification channels: file, log, optional webhook.

    ``origin`` (host and daemon id) is stamped on every notification, where
    several daemons share one store.
    """
    notify = settings.notify
    channels: list[Notifier] = [FileNotifier(notify.resolved_folder(settings.state_dir))]
    if notify.log:
        channels.append(LogNotifier())
    if notify.webhook_url:
        channels.append(WebhookNotifier(notify.webhook_url, notify.webhook_timeout_s))
    return FanoutNotifier(channels, origin)


#: How long ``status`` lists a store write error that later writes got past.
RECENT_WRITE_ERROR = timedelta(hours=1)


class App:
    """Everything a command handler or a worker may need, in one place."""

    def __init__(
        self, settings: Settings, store: AnyStore, *, log_file: Path | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.log_file = log_file
        # With PostgreSQL several daemons share the store: work is leased to a runner.
        me = identify(
            settings.store.daemon_id, settings.state_dir, shared=store.backend != "sqlite"
        )
        self.identity = me
        self.policy: GatePolicy = gate_policy(settings)
        self.gate = GateService(
            store,
            lambda: self.policy,
            approval_ttl=self._approval_ttl,
            max_batch=settings.gate.max_batch,
        )
        model = make_model(settings.llm.llm_settings())
        settings_now = lambda: self.settings  # noqa: E731
        self.proactive = ProactiveLoop(
            store, self.gate, settings_now, model=model, runner=me.claimer
        )
        browser = settings.browser
        vault = _vault(settings)

        def knowledge_base() -> KnowledgeBase:
            return load_knowledge_base(
                browser.knowledge_base, browser.workflows_dir, browser.workflow_dirs
            )

        # The agent's browser and step planner: Chromium through Playwright and the
        # configured model (each loads its package when first used).
        self.operations = OperationsService(
            store,
            browser,
            state_dir=settings.state_dir,
            vault=vault,
            browser=PlaywrightBrowser(browser),
            model=model,
            knowledge_base=knowledge_base,
            owner=me.runner,
            mine=me.mine,
            close_browser=True,
            agent_mode=_agent_mode(settings),
            level=lambda: self.governance.autonomy.snapshot.level,
        )
        self.consents = ConsentsService(store, self.operations, knowledge_base=knowledge_base)
        self.secrets = SecretsService(store, vault)
        self.events = EventHub()
        self.notifier = make_notifier(settings, me.origin if me.shared else None)
        self.incidents = IncidentService(store, self.notifier, self.events)
        self.execution = self._execution(store, model)
        self.rollback = RollbackService(self.execution)
        self.execution_views = ExecutionViews(store, self.operations)
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
        self.approvals = ApprovalService(store, self.gate, self.execution, self.governance.scope)
        for spec in self.governance.task_specs():
            self.proactive.scheduler.add(spec)
        self.state = "starting"
        self.started_at = datetime.now(UTC)
        self.started_monotonic = time.monotonic()
        self.store_schema = 0
        self.integrity: dict[str, Any] = {"state": "not checked"}
        self.vault_warning: str | None = None
        self._stop = anyio.Event()

    def _execution(self, store: AnyStore, model: Any) -> ExecutionService:
        """Return the execution engine, its runner this process (see :mod:`agentd.identity`)."""
        me = self.identity
        return ExecutionService(
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
            runner=me.runner,
            mine=me.mine,
        )

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
        degraded = "; DEGRADED (agentctl status)" if self.problems() else ""
        return (
            f"{self.state}; schema v{self.store_schema}; {self.governance.status_text()}{degraded}"
        )

    def problems(self) -> list[str]:
        """Return what is wrong while the daemon runs (``agentctl status`` shows it; no I/O)."""
        out = []
        store = self.store
        if store.corrupt is not None:
            out.append(f"the database is damaged, writes are refused: {store.corrupt}")
        if store.last_write_error is not None:
            at, error = store.last_write_error
            when = at.isoformat(timespec="seconds")
            if store.writes_failing:
                out.append(f"store writes are failing (the last at {when}): {error}")
            elif datetime.now(UTC) - at < RECENT_WRITE_ERROR:
                out.append(
                    f"a store write failed at {when} ({store.write_errors} since start; "
                    f"later writes succeeded): {error}"
                )
        unsaved = self.governance.autonomy.unsaved_kill_switch
        if unsaved is not None:
            out.append(
                f"the kill switch is on in memory only, not yet saved ({unsaved['error']}); "
                f"it is lost if the daemon restarts before the store accepts writes"
            )
        if self.vault_warning:
            out.append(self.vault_warning)
        return out

    def started(self, info: StoreInfo) -> dict[str, Any]:
        """Return what the start record says besides version and pid: schema, and who."""
        me = self.identity
        return {"schema": info.schema_version} | (
            {"runner": me.runner, **me.origin} if me.shared else {}
        )

    def state_watcher(self) -> StateWatcher | None:
        """Return the watcher of the global state other daemons change (PostgreSQL), or None."""
        if not isinstance(self.store, PostgresStore):
            return None
        return StateWatcher(
            self.governance.autonomy,
            on_change=self.governance_changed,
            stop_all=self.operations.stop_all,
            listener=ChangeListener(self.store.url, STATE_CHANNEL),
        )

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


def _agent_mode(settings: Settings) -> AgentModeSettings:
    """Return agent mode's budgets, prices and approval wait from ``[llm]``."""
    llm = settings.llm
    return AgentModeSettings(
        limits=llm.agent_limits(),
        input_usd_per_mtok=llm.input_usd_per_mtok,
        output_usd_per_mtok=llm.output_usd_per_mtok,
        approval_timeout_s=llm.agent_approval_timeout_s,
    )


def build_app(settings: Settings, *, log_file: Path | None = None) -> App:
    """Create the app and its adapters (nothing is opened yet)."""
    store = make_store(
        settings.store.url,
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
    return Dispatcher(app, policy, refusal_interval_s=control.refusal_audit_interval_s)


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


def _local_database(settings: Settings) -> Path | None:
    """Return the SQLite file the state lock covers too; None on PostgreSQL (a shared database)."""
    return None if settings.store.url else settings.database_path


async def open_store(
    store: AnyStore, notifier: SystemdNotifier, every_s: float = OPEN_EXTEND_EVERY_S
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


async def _background_integrity(app: App, notifier: SystemdNotifier) -> None:
    await check_integrity(app)
    notifier.notify(STATUS=app.status_line())


async def run_daemon(  # noqa: PLR0915
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
        first_byte_timeout_s=control.first_byte_timeout_s,
        max_connections=control.max_connections,
        max_connections_per_uid=control.max_connections_per_uid,
        reserved_connections=control.reserved_connections,
        max_upload_bytes=control.max_upload_bytes,
    )
    # Before the store opens: a second daemon on this folder must not touch it.
    lock = StateLock(settings.state_dir, _local_database(settings))
    lock.acquire()
    try:
        notifier.notify(STATUS="checking the store")
        checked = await check_integrity_at_start(app)
        notifier.notify(STATUS="opening store")
        await open_store(app.store, notifier)
    except BaseException:
        lock.release()
        raise
    try:
        app.vault_warning = await check_vault_key(app)
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
        lock.release()
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
                    data={"version": __version__, "pid": os.getpid(), **app.started(info)},
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
            await _serve(app, server, notifier, signals, check_integrity=not checked)
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
                try:
                    # The last figures, so the file does not keep a stale minute's.
                    await app.governance.metrics.write_textfile()
                except Exception as exc:  # the stop goes on without it
                    logger.error("could not write the metrics file at stop: {}", exc)
                await app.store.close()
                lock.release()
            notifier.close()
            logger.info("agentd stopped")
    return 0


async def _serve(
    app: App,
    server: ControlServer,
    notifier: SystemdNotifier,
    signals: Any,
    *,
    check_integrity: bool = False,
) -> None:
    timeout = app.settings.daemon.shutdown_timeout_s
    async with anyio.create_task_group() as tg:
        if check_integrity:
            # A large store is checked while it serves; a damaged one then refuses writes.
            tg.start_soon(_background_integrity, app, notifier)
        tg.start_soon(server.serve)
        tg.start_soon(app.gate.run)
        # The scheduler runs the proactive tasks and the housekeeping
        # (approval expiry, idempotency pruning, the inbox).
        await tg.start(app.proactive.run)
        tg.start_soon(app.operations.run)
        tg.start_soon(app.execution.run)
        watcher = app.state_watcher()
        if watcher is not None:
            tg.start_soon(watcher.run)
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
