"""Configuration of execution, rollback and notifications ([execution], [notify])."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from agentd.core.executors import DEFAULT_EXECUTORS, EXECUTORS, HANDOFF, Executor, derive
from agentd.core.windows import ExecutionWindow, validate_window
from agentd.errors import InvalidArgument
from agentd.sections import Section

__all__ = ["DEFAULT_EXECUTORS", "HANDOFF", "ExecutionConfig", "NotifyConfig", "WindowConfig"]


class WindowConfig(Section):
    """When changes may run: days and hours in a time zone (end may be past midnight)."""

    timezone: str = Field("UTC", description="IANA time zone the hours are in.")
    days: list[str] = Field(
        default_factory=lambda: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        description="Days the window opens (mon..sun).",
    )
    start: str = Field("00:00", description="Opening time, HH:MM.")
    end: str = Field("00:00", description="Closing time, HH:MM (equal to start: all day).")

    @model_validator(mode="after")
    def _valid(self) -> WindowConfig:
        try:
            self.window()
        except InvalidArgument as exc:
            raise ValueError(exc.message) from None
        return self

    def window(self) -> ExecutionWindow:
        """Return the window as the pure core takes it."""
        return validate_window(self.timezone, self.days, self.start, self.end)


class CustomExecutor(Section):
    """An executor that works like a shipped one on another back-office's workflows."""

    like: str = Field(description="The shipped executor it works like (e.g. product_seo).")
    service: str | None = Field(
        None, description="Browser service its operations run on (default: default_service)."
    )
    workflows: dict[str, str] = Field(
        default_factory=dict,
        description="The shipped executor's workflow names, each mapped to the one to run "
        "instead (same parameters and results).",
    )


class ExecutionConfig(Section):
    """How approved intents are carried out (SPEC §6)."""

    enabled: bool = Field(True, description="False leaves approved intents queued.")
    daily_limit: int = Field(50, ge=0, le=100_000, description="Executions per tenant per day.")
    trusted_mode_required: bool = Field(
        True, description="Run only for accounts whose trusted mode is ACTIVE."
    )
    poll_interval_s: float = Field(
        5.0, gt=0, le=3600, description="Longest wait before looking at the queue again."
    )
    window: WindowConfig | None = Field(
        None,
        description="Default execution window (none: always open); "
        "per tenant: [execution.windows.NAME].",
    )
    windows: dict[str, WindowConfig] = Field(
        default_factory=dict, description="Execution window per tenant: [execution.windows.NAME]."
    )
    executors: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_EXECUTORS),
        description="Executor by action type or DOMAIN.change_type "
        '("handoff": a person does it, closed with agentctl handoff done|failed).',
    )
    default_executor: Literal["handoff"] | None = Field(
        None,
        description='Executor of action types [execution.executors] does not map: "handoff" '
        "hands them to a person; unset, nothing carries them out (the gate holds them "
        "for approval with NO_EXECUTOR).",
    )
    custom_executors: dict[str, CustomExecutor] = Field(
        default_factory=dict,
        description="Executors of your own back-office: [execution.custom_executors.NAME], "
        "usable by name in executors.",
    )
    operation_timeout_s: float = Field(
        300.0,
        gt=0,
        le=86_400,
        description="Longest one browser operation of an execution may take.",
    )

    @model_validator(mode="after")
    def _known_executors(self) -> ExecutionConfig:
        for name in self.custom_executors:
            if name in EXECUTORS:
                raise ValueError(f"custom executor {name!r} has the name of a shipped one")
        try:
            registry = self.registry()
        except InvalidArgument as exc:
            raise ValueError(exc.message) from None
        for key, name in self.executors.items():
            if name not in registry:
                known = ", ".join(sorted(registry))
                raise ValueError(f"executor {name!r} for {key!r} is unknown (known: {known})")
        return self

    def registry(self) -> dict[str, Executor]:
        """Return every executor by name: the shipped ones and the custom ones.

        :raises InvalidArgument: a custom executor is not valid.
        """
        out = dict(EXECUTORS)
        for name, custom in self.custom_executors.items():
            out[name] = derive(name, custom.like, custom.workflows, custom.service)
        return out

    def window_for(self, tenant: str) -> ExecutionWindow | None:
        """Return the tenant's window, the default, or None (always open)."""
        chosen = self.windows.get(tenant, self.window)
        return chosen.window() if chosen is not None else None


class NotifyConfig(Section):
    """Where notifications for the emergency contact go (incidents, breaker trips)."""

    folder: Path | None = Field(
        None, description="One JSON file per notification (default: STATE_DIR/notifications)."
    )
    log: bool = Field(True, description="Also write each notification to the log.")
    webhook_url: str | None = Field(
        None, description="POST each notification as JSON here (http or https)."
    )
    webhook_timeout_s: float = Field(
        5.0, gt=0, le=120, description="Longest one webhook call may take."
    )

    @field_validator("webhook_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("webhook_url must start with http:// or https://")
        return value

    def resolved_folder(self, state_dir: Path) -> Path:
        """Return the notifications folder, applying the default under ``state_dir``."""
        return self.folder or state_dir / "notifications"
