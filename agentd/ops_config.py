"""Configuration sections of browser operations: ``[browser]`` and ``[vault]``.

Both are :class:`~agentd.config.Section` models (unknown keys are errors), to
be added to :class:`~agentd.config.Settings` as ``browser`` and ``vault``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from agentd.sections import Section
from agentd.vault import DEFAULT_CREDENTIAL_NAME

# Debian's chromium-headless-shell: the same engine and the same captures as full
# Chromium (pixel for pixel on the demo back-office), but it launches in about a
# third of the time and runs an operation in about half. It cannot show a window:
# ``headless = false`` needs full Chromium (FULL_CHROMIUM, Debian's chromium).
DEFAULT_CHROMIUM = Path("/usr/lib/chromium/chromium-headless-shell")
FULL_CHROMIUM = Path("/usr/lib/chromium/chromium")
HEADLESS_SHELL = "chromium-headless-shell"
DEFAULT_SERVICE = "backoffice"


# The project's folder: the knowledge base and the workflows it was extracted
# from ship beside the package (the daemon's working directory is no guide).
PROJECT = Path(__file__).resolve().parent.parent


class ServiceConfig(Section):
    """A web back-office the agents may drive."""

    base_url: str = Field(description="Base URL the workflow paths are relative to.")

    @field_validator("base_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class BrowserSettings(Section):
    """Browser agents: Chromium, concurrency, timeouts and where evidence is kept."""

    executable_path: Path = Field(
        DEFAULT_CHROMIUM,
        description="Chromium binary: Debian's chromium-headless-shell (same captures as full "
        "Chromium, about half the time per operation), or full Chromium, "
        f"{FULL_CHROMIUM}, which headless = false needs.",
    )
    headless: bool = Field(
        True, description="Run Chromium without a window (false needs full Chromium)."
    )
    sandbox: bool | None = Field(
        None,
        description="Chromium's own sandbox (its renderers in user, PID and network "
        "namespaces under seccomp). Unset: on unless the daemon runs as root, where Chromium "
        "cannot sandbox itself (the systemd unit runs it as user agentd). false: off, for a "
        "kernel without unprivileged user namespaces. true: required; refused as root.",
    )
    max_browsers: int = Field(2, ge=1, le=32, description="Operations running at once.")
    step_timeout_s: float = Field(10.0, gt=0, le=600, description="Longest one step may take.")
    lease_s: float = Field(
        60.0, ge=5, le=3600, description="An operation not renewed for this long is orphaned."
    )
    screenshots_dir: Path | None = Field(
        None, description="Screenshots and traces (default: STATE_DIR/operations)."
    )
    screenshot_format: Literal["png", "jpeg"] = Field(
        "png", description="png (exact, for masking checks) or jpeg (smaller files, no faster)."
    )
    screenshot_scale: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Step screenshots at this fraction of the viewport's size: 0.5 keeps a "
        "quarter of the pixels, so smaller files and about 40% less of Chromium's CPU per "
        "capture (0.25: about 65% less), but takes as long as full size (a capture's time is "
        "Chromium producing the frame, about 33 ms); the final screenshot of an operation "
        "that did not complete, and the planner's, are full size.",
    )
    viewport_width: int = Field(1280, ge=320, le=3840, description="Page width, in pixels.")
    viewport_height: int = Field(900, ge=240, le=2160, description="Page height, in pixels.")
    trace: bool = Field(True, description="Keep a Playwright trace per operation.")
    knowledge_base: Path = Field(
        PROJECT / "knowledge_base" / "AGENT_KNOWLEDGE_BASE.json",
        description="Workflow registry file (default: the one shipped with agentd).",
    )
    workflows_dir: Path | None = Field(
        PROJECT / "workflows",
        description="Workflow tests the knowledge base came from; a stale one is refused.",
    )
    workflow_dirs: list[Path] = Field(
        default_factory=list,
        description="Folders of your own workflow tests, built into one knowledge base with the "
        "bundled ones (`agentd kb build`); set knowledge_base to a file of your own too.",
    )
    default_service: str = Field(DEFAULT_SERVICE, description="Service of `op run` by default.")
    services: dict[str, ServiceConfig] = Field(
        default_factory=dict, description="Back-offices by service name: [browser.services.NAME]."
    )

    @model_validator(mode="after")
    def _window_needs_full_chromium(self) -> BrowserSettings:
        if not self.headless and self.executable_path.name == HEADLESS_SHELL:
            raise ValueError(
                f"headless = false needs full Chromium: {self.executable_path} cannot show a "
                f'window; set executable_path = "{FULL_CHROMIUM}" (Debian\'s chromium package)'
            )
        return self

    @field_validator("knowledge_base", "workflows_dir", "screenshots_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        # A daemon's working directory is not a place to find files.
        return value.expanduser().absolute() if value is not None else None

    @field_validator("workflow_dirs")
    @classmethod
    def _absolute_dirs(cls, value: list[Path]) -> list[Path]:
        return [v.expanduser().absolute() for v in value]

    def resolved_screenshots_dir(self, state_dir: Path) -> Path:
        """Return the evidence folder, applying the default under ``state_dir``."""
        return self.screenshots_dir or state_dir / "operations"


class VaultSettings(Section):
    """Where the vault key comes from (a systemd credential wins over the file)."""

    key_file: Path | None = Field(None, description="Key file, mode 0600.")
    credential_name: str = Field(
        DEFAULT_CREDENTIAL_NAME, description="Name of the systemd credential holding the key."
    )
