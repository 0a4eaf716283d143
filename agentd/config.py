"""The daemon's configuration: one TOML file plus ``AGENTD_*`` overrides.

Precedence, highest first: environment (``AGENTD_STATE_DIR``,
``AGENTD_CONTROL__READ_TIMEOUT_S`` — ``__`` separates nesting), then the TOML
file, then the defaults below (which ``config/agentd.toml`` repeats, and a test
keeps the two equal). Every model forbids unknown keys: a typo is an error
naming the file and the key, never silently ignored.
"""

from __future__ import annotations

import contextvars
import difflib
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from agentd import paths
from agentd.core.guardrails import (
    DEFAULT_APPROVAL_REQUIRED,
    DEFAULT_AUTONOMOUS,
    DEFAULT_FORBIDDEN,
    DEFAULT_GATED_STAGES,
    DEFAULT_HARD_STOP,
)
from agentd.core.risk import DEFAULT_HIGH_CHANGE_TYPES, DEFAULT_MEDIUM_MIN_ITEMS
from agentd.core.store_url import check_store_url, redact_url
from agentd.errors import ConfigInvalid, InvalidArgument
from agentd.exec_config import ExecutionConfig, NotifyConfig
from agentd.gov_config import BreakersConfig, GovernanceConfig
from agentd.ops_config import BrowserSettings, VaultSettings
from agentd.proactive_config import (
    DigestConfig,
    GoalsConfig,
    InboxConfig,
    LLMConfig,
    PatternsConfig,
    PlannerConfig,
    SchedulerConfig,
)
from agentd.sections import Section

EX_CONFIG = 78  # sysexits.h: configuration error
MAX_SOCKET_PATH = 107  # sun_path is 108 bytes including the NUL


class ControlSettings(Section):
    """The control socket that ``agentctl`` talks to."""

    socket_mode: int = Field(
        0o660, description="File mode of the socket (0600 or 0660; octal in TOML: 0o660)."
    )
    group: str | None = Field(
        None,
        description="Group whose members may use agentctl (besides root and the daemon's user).",
    )
    approvers_group: str | None = Field(
        None, description="Group whose members may approve and reject (root always may)."
    )
    max_message_bytes: int = Field(
        1_048_576, ge=1024, le=256 * 1_048_576, description="Largest request accepted, in bytes."
    )
    read_timeout_s: float = Field(
        10.0, gt=0, le=3600, description="A client must send its request within this time."
    )
    first_byte_timeout_s: float = Field(
        2.0,
        gt=0,
        le=3600,
        description="A client must start sending within this time of connecting.",
    )
    max_connections: int = Field(
        256,
        ge=1,
        le=10_000,
        description="Connections served at once; one more is answered BUSY at once, not queued.",
    )
    max_connections_per_uid: int = Field(
        16,
        ge=1,
        le=10_000,
        description="Connections one user may hold at once (root is not counted per user).",
    )
    reserved_connections: int = Field(
        16,
        ge=0,
        le=10_000,
        description=(
            "Of max_connections, this many are kept for root and control.approvers_group "
            "(less than max_connections)."
        ),
    )
    refusal_audit_interval_s: float = Field(
        60.0,
        ge=1,
        le=86_400,
        description=(
            "A user's first refused request is audited at once; more within this time are "
            "audited as one ACCESS_REFUSED record with their count."
        ),
    )
    max_upload_bytes: int = Field(
        268_435_456, ge=1024, description="Largest file agentctl may upload (imports)."
    )

    @field_validator("socket_mode")
    @classmethod
    def _restrictive(cls, value: int) -> int:
        if value not in (0o600, 0o660):
            raise ValueError(f"must be 0o600 or 0o660, not {oct(value)}")
        return value

    @model_validator(mode="after")
    def _reserve_fits(self) -> ControlSettings:
        if self.reserved_connections >= self.max_connections:
            raise ValueError(
                f"reserved_connections ({self.reserved_connections}) must be less than "
                f"max_connections ({self.max_connections})"
            )
        return self


class StoreSettings(Section):
    """The store: a SQLite file in the state folder (the default), or a PostgreSQL database."""

    url: str = Field(
        "",
        description=(
            "PostgreSQL database to keep everything in, as a libpq URL "
            "(postgresql://USER@HOST:PORT/DB, or postgresql://USER@/DB?host=/run/postgresql "
            "for a Unix socket); several daemons may share one. Empty (default): the SQLite "
            "file at path. Keep the password in ~/.pgpass or PGPASSFILE rather than here; "
            "one given here is shown as *** in logs, status and errors."
        ),
    )
    path: Path | None = Field(
        None, description="SQLite database file (default: STATE_DIR/agentd.sqlite3)."
    )
    synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL",
        description=(
            "SQLite synchronous mode. FULL (default): a decision acknowledged to a client "
            "survives power loss; group commit keeps it fast. NORMAL survives a crash of the "
            "daemon but may lose the last transactions on power loss."
        ),
    )
    busy_timeout_ms: int = Field(5000, ge=0, le=600_000, description="Wait this long for a lock.")
    daemon_id: str = Field(
        "",
        description=(
            "This daemon's id where several share one PostgreSQL database: it names the "
            "holder of leases and the writer of notifications (empty: the host name and a "
            "hash of the state folder). Letters, digits, '.', '_', '-'; unique per daemon."
        ),
    )

    @field_validator("daemon_id")
    @classmethod
    def _daemon_id(cls, value: str) -> str:
        from agentd.identity import DAEMON_ID

        if value and not DAEMON_ID.fullmatch(value):
            raise ValueError(
                "must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        return value

    @field_validator("url")
    @classmethod
    def _store_url(cls, value: str) -> str:
        return check_store_url(value)

    @property
    def engine(self) -> str:
        """Return ``postgresql`` when a URL is set, else ``sqlite``."""
        return "postgresql" if self.url else "sqlite"


class LogSettings(Section):
    """Logging: readable lines to stderr (journald), JSON lines to a rotating file."""

    level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="Least severe level written (loguru levels)."
    )
    file_name: str = Field("agentd.jsonl", description="JSON-lines log file inside LOG_DIR.")
    rotation: str = Field("20 MB", description="Rotate the JSON log at this size.")
    retention: int = Field(10, ge=1, le=1000, description="Rotated JSON log files kept.")

    @field_validator("file_name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not value or "/" in value or value in (".", ".."):
            raise ValueError("must be a plain file name")
        return value


class DaemonSettings(Section):
    """The daemon's own behaviour."""

    shutdown_timeout_s: float = Field(
        10.0, gt=0, le=600, description="On SIGTERM, wait this long for work in flight."
    )
    health_timeout_s: float = Field(
        5.0,
        gt=0,
        le=600,
        description="A health check slower than this withholds the watchdog ping.",
    )


def _sorted(values: frozenset[str]) -> list[str]:
    return sorted(values)


class AutonomyConfig(Section):
    """Auto-execution policy (SPEC §3.3); per tenant under [tenants.NAME.autonomy]."""

    level: Literal["L3", "L3+", "L4", "L4+"] = Field(
        "L3", description="L3: nothing auto-executes; L3+: LOW risk; L4: LOW+MEDIUM; L4+: all."
    )
    allowlist: list[str] = Field(
        default_factory=lambda: _sorted(DEFAULT_AUTONOMOUS),
        description="Action types that may auto-execute (default: the autonomous tier).",
    )
    confidence_floor: float = Field(
        0.7, ge=0, le=1, description="Minimum confidence to auto-execute."
    )
    approval_ttl_hours: float = Field(
        72, gt=0, le=24 * 365, description="Pending approvals expire (fail closed) after this."
    )
    kill_switch: bool = Field(False, description="True stops all auto-execution.")
    manual_action_types: list[str] = Field(
        default_factory=list, description="Action types whose autonomy mode is MANUAL."
    )
    manual_accounts: list[str] = Field(
        default_factory=list, description="Accounts whose autonomy mode is MANUAL."
    )


class TenantAutonomyConfig(Section):
    """A tenant's overrides of [autonomy]; unset keys inherit."""

    level: Literal["L3", "L3+", "L4", "L4+"] | None = Field(
        None, description="The tenant's autonomy.level."
    )
    allowlist: list[str] | None = Field(None, description="The tenant's autonomy.allowlist.")
    confidence_floor: float | None = Field(
        None, ge=0, le=1, description="The tenant's autonomy.confidence_floor."
    )
    kill_switch: bool | None = Field(None, description="True stops the tenant's auto-execution.")
    manual_action_types: list[str] | None = Field(
        None, description="The tenant's autonomy.manual_action_types."
    )
    manual_accounts: list[str] | None = Field(
        None, description="The tenant's autonomy.manual_accounts."
    )


class BudgetConfig(Section):
    """Daily auto-execution limits (UTC days); exhausted means REQUIRE_APPROVAL."""

    per_tenant_daily: int = Field(50, ge=0, description="Auto-executions per tenant per day.")
    per_account_daily: int = Field(10, ge=0, description="Auto-executions per account per day.")
    per_action_type_daily: int = Field(
        25, ge=0, description="Auto-executions per action type per tenant per day."
    )


class TenantBudgetConfig(Section):
    """A tenant's overrides of [budget]; unset keys inherit."""

    per_tenant_daily: int | None = Field(None, ge=0, description="The tenant's daily limit.")
    per_account_daily: int | None = Field(
        None, ge=0, description="The daily limit of each of the tenant's accounts."
    )
    per_action_type_daily: int | None = Field(
        None, ge=0, description="The tenant's daily limit per action type."
    )


class TenantConfig(Section):
    """Per-tenant overrides."""

    autonomy: TenantAutonomyConfig = TenantAutonomyConfig()
    budget: TenantBudgetConfig = TenantBudgetConfig()


class GuardrailsConfig(Section):
    """The three tiers (SPEC §3.1) and the stages that gate autonomous actions."""

    autonomous: list[str] = Field(
        default_factory=lambda: _sorted(DEFAULT_AUTONOMOUS),
        description="Action types that may auto-execute when every later check passes.",
    )
    approval_required: list[str] = Field(
        default_factory=lambda: _sorted(DEFAULT_APPROVAL_REQUIRED),
        description="Action types that always wait for a person (so does an unknown type).",
    )
    hard_stop: list[str] = Field(
        default_factory=lambda: _sorted(DEFAULT_HARD_STOP),
        description="Action types that never run, not even with approval.",
    )
    gated_stages: list[str] = Field(
        default_factory=lambda: _sorted(DEFAULT_GATED_STAGES),
        description="Deal stages on which autonomous actions need approval.",
    )


class RiskConfig(Section):
    """Risk levels (SPEC §3.2): HIGH by change type, MEDIUM by size or bulk, else LOW."""

    high_change_types: list[str] = Field(
        default_factory=lambda: _sorted(DEFAULT_HIGH_CHANGE_TYPES),
        description="Change types that are HIGH risk (rollback window 30 days).",
    )
    medium_min_items: int = Field(
        DEFAULT_MEDIUM_MIN_ITEMS,
        ge=1,
        description="A diff touching at least this many items is MEDIUM risk (7 days).",
    )


class GateConfig(Section):
    """How the gate runs."""

    max_batch: int = Field(
        256, ge=1, le=10_000, description="Most decisions grouped into one transaction."
    )
    idempotency_retention_days: int = Field(
        90, ge=1, le=3650, description="Idempotency records older than this are pruned."
    )


_FILE_DATA: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("_FILE_DATA")


class _TomlSource(PydanticBaseSettingsSource):
    """Feed the already parsed TOML file into pydantic-settings."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return _FILE_DATA.get({}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FILE_DATA.get({}))


class Settings(BaseSettings):
    """Everything the daemon reads at start-up (and on ``agentctl reload``)."""

    model_config = SettingsConfigDict(
        env_prefix="AGENTD_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    state_dir: Path = Field(
        default_factory=lambda: Path(paths.default_state_dir()),
        description="Folder for the database and everything else the daemon keeps "
        "(default: $STATE_DIRECTORY when systemd sets it, else $XDG_STATE_HOME/agentd, "
        "else ~/.local/state/agentd).",
    )
    socket_path: Path | None = Field(
        None, description="Control socket (default: $RUNTIME_DIRECTORY or STATE_DIR/agentd.sock)."
    )
    log_dir: Path | None = Field(
        None, description="Folder for the JSON log (default: $LOGS_DIRECTORY or STATE_DIR/logs)."
    )
    control: ControlSettings = ControlSettings()
    store: StoreSettings = StoreSettings()
    log: LogSettings = LogSettings()
    daemon: DaemonSettings = DaemonSettings()
    autonomy: AutonomyConfig = AutonomyConfig()
    budget: BudgetConfig = BudgetConfig()
    guardrails: GuardrailsConfig = GuardrailsConfig()
    risk: RiskConfig = RiskConfig()
    forbidden: dict[str, list[str]] = Field(
        default_factory=lambda: {d: _sorted(v) for d, v in DEFAULT_FORBIDDEN.items()},
        description="Forbidden change types per domain (BLOCKED, FORBIDDEN_CHANGE_TYPE).",
    )
    tenants: dict[str, TenantConfig] = Field(
        default_factory=dict,
        description="By tenant id (NAME): [tenants.NAME.autonomy] and .budget.",
    )
    gate: GateConfig = GateConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    patterns: PatternsConfig = PatternsConfig()
    goals: GoalsConfig = GoalsConfig()
    planner: PlannerConfig = PlannerConfig()
    digest: DigestConfig = DigestConfig()
    inbox: InboxConfig = InboxConfig()
    llm: LLMConfig = LLMConfig()
    browser: BrowserSettings = BrowserSettings()
    vault: VaultSettings = VaultSettings()
    execution: ExecutionConfig = ExecutionConfig()
    notify: NotifyConfig = NotifyConfig()
    breakers: BreakersConfig = BreakersConfig()
    governance: GovernanceConfig = GovernanceConfig()

    # Where the values came from; set by load_settings, not by the file.
    config_file: Path | None = Field(None, exclude=True)

    @field_validator("state_dir", "socket_path", "log_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        # A daemon's working directory is not a place to keep state.
        return value.expanduser().absolute() if value is not None else None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls))

    @property
    def resolved_socket_path(self) -> Path:
        """Return the socket path, applying the default when unset."""
        return self.socket_path or Path(paths.default_socket_path(self.state_dir))

    @property
    def resolved_log_dir(self) -> Path:
        """Return the log folder, applying the default when unset."""
        return self.log_dir or Path(paths.default_log_dir(self.state_dir))

    @property
    def database_path(self) -> Path:
        """Return the SQLite file, applying the default when unset."""
        return self.store.path or self.state_dir / "agentd.sqlite3"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigInvalid(
            f"{path}: configuration file not found", details={"file": str(path)}
        ) from exc
    except PermissionError as exc:
        raise ConfigInvalid(
            f"{path}: cannot read configuration file: permission denied",
            details={"file": str(path)},
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigInvalid(f"{path}: not valid TOML: {exc}", details={"file": str(path)}) from exc


def _env_name(loc: tuple[Any, ...]) -> str:
    return "AGENTD_" + "__".join(str(part).upper() for part in loc)


def _env_source(loc: tuple[Any, ...], data: dict[str, Any]) -> str | None:
    """Return the environment variable that set the value at ``loc``, or None.

    The environment wins over the file, so a variable naming the key itself is
    the source even when the file sets the key too. A variable naming a parent
    table (``AGENTD_AUTONOMY='{...}'``) is merged with the file's table, so it
    is the source only when the file does not set the key.
    """
    present = {name.upper() for name in os.environ}
    exact = _env_name(loc)
    if exact in present:
        return exact
    for depth in range(len(loc) - 1, 0, -1):
        parent = _env_name(loc[:depth])
        if parent in present and not _in_file(data, loc):
            return parent
    return None


def _in_file(data: dict[str, Any], loc: tuple[Any, ...]) -> bool:
    node: Any = data
    for part in loc:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    model: Any = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None or not isinstance(field.annotation, type):
            return []
        model = field.annotation
    return list(getattr(model, "model_fields", {}))


def _describe(exc: ValidationError, path: Path | None, data: dict[str, Any]) -> ConfigInvalid:
    lines = []
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc)
        env_name = _env_source(loc, data)
        if env_name is not None:
            source = f"environment variable {env_name}"
        else:
            source = str(path) if path else "built-in defaults"
        if err["type"] == "extra_forbidden":
            what = "unknown key"
            close = difflib.get_close_matches(str(loc[-1]), _known_keys(loc), n=1)
            if close:
                what += f" (did you mean {close[0]!r}?)"
        else:
            what = err["msg"]
            if "input" in err and not isinstance(err["input"], dict):
                got = err["input"]
                # A URL may carry a password: never shown.
                shown = redact_url(got) if isinstance(got, str) else got
                what += f" (got {shown!r})"
        lines.append(f"{source}: {key}: {what}")
        problems.append({"source": source, "key": key, "problem": what})
    message = "invalid configuration:\n  " + "\n  ".join(lines)
    return ConfigInvalid(message, details={"file": str(path) if path else None, "errors": problems})


def load_settings(config: str | os.PathLike[str] | None = None) -> Settings:
    """Read and validate the configuration; nothing is created or written.

    :raises ConfigInvalid: the file is missing or malformed, or a value is wrong
        (the message names the file or variable, the key and the problem).
    """
    found = paths.resolve_config_path(config)
    path = Path(found) if found else None
    data = _read_toml(path) if path else {}
    token = _FILE_DATA.set(data)
    try:
        settings = Settings(config_file=path)
    except ValidationError as exc:
        raise _describe(exc, path, data) from None
    finally:
        _FILE_DATA.reset(token)
    # The policy tables are checked here too, so a bad table stops start-up
    # (and reload) before anything runs.
    from agentd.policy import gate_policy

    try:
        gate_policy(settings)
        settings.patterns.rules()
    except (ConfigInvalid, InvalidArgument) as exc:
        source = str(path) if path else "built-in defaults"
        raise ConfigInvalid(
            f"invalid configuration:\n  {source}: {exc.message}",
            details={
                "file": str(path) if path else None,
                "errors": [
                    {"source": source, "key": exc.details.get("field"), "problem": exc.message}
                ],
            },
        ) from None
    sock = settings.resolved_socket_path
    if len(os.fsencode(sock)) > MAX_SOCKET_PATH:
        if "AGENTD_SOCKET_PATH" in os.environ:
            source = "environment variable AGENTD_SOCKET_PATH"
        else:
            source = str(path) if path else "built-in defaults"
        raise ConfigInvalid(
            f"invalid configuration:\n  {source}: socket_path: {sock} is longer than the "
            f"{MAX_SOCKET_PATH} bytes a Unix socket path may have; set a shorter socket_path",
            details={
                "file": str(path) if path else None,
                "errors": [{"source": source, "key": "socket_path", "problem": "too long"}],
            },
        )
    return settings


def check_host(settings: Settings) -> None:
    """Check what the configuration names on this host: the control groups exist.

    Kept apart from :func:`load_settings`, which checks values alone (the same
    file is valid on a host that has the groups).

    :raises ConfigInvalid: a group does not exist (the message names where it was set).
    """
    import grp

    lines, problems = [], []
    for key in ("group", "approvers_group"):
        name = getattr(settings.control, key)
        if name is None:
            continue
        try:
            grp.getgrnam(name)
        except KeyError:
            env = _env_source(("control", key), {})
            path = settings.config_file
            source = f"environment variable {env}" if env else str(path or "built-in defaults")
            what = f"no group {name!r} on this host"
            lines.append(f"{source}: control.{key}: {what}")
            problems.append({"source": source, "key": f"control.{key}", "problem": what})
    if lines:
        raise ConfigInvalid(
            "invalid configuration:\n  " + "\n  ".join(lines),
            details={
                "file": str(settings.config_file) if settings.config_file else None,
                "errors": problems,
            },
        )
