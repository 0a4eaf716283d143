"""Configuration sections of the proactive loop (SPEC §4).

``[scheduler]`` intervals, ``[patterns]`` rule thresholds, ``[goals]``,
``[digest]``, ``[inbox]`` and ``[llm]``. Defaults are the documented ones;
every section forbids unknown keys like the rest of the configuration.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from agentd.core.agent_mode import Limits
from agentd.core.patterns import PatternRules
from agentd.llm import DEFAULT_MODEL, LLMSettings
from agentd.sections import Section

_DAY = 86_400.0


class SchedulerConfig(Section):
    """Scheduled tasks (SPEC §4.1): how often each runs, in seconds."""

    enabled: bool = Field(
        True, description="False runs no task on a schedule (run-task still works)."
    )
    pattern_scan_interval_s: float = Field(
        6 * 3600, gt=0, le=30 * _DAY, description="Scan recently active accounts for patterns."
    )
    proactive_outreach_check_interval_s: float = Field(
        3600, gt=0, le=30 * _DAY, description="Turn new patterns and goals into gated intents."
    )
    goal_progress_update_interval_s: float = Field(
        _DAY, gt=0, le=30 * _DAY, description="Refresh goal progress from the latest metrics."
    )
    daily_digest_generation_interval_s: float = Field(
        _DAY, gt=0, le=30 * _DAY, description="Write the daily digest file."
    )
    context_summarization_interval_s: float = Field(
        _DAY, gt=0, le=30 * _DAY, description="Summarise stale account context."
    )
    approval_expiry_interval_s: float = Field(
        60, gt=0, le=_DAY, description="Expire pending approvals past their deadline."
    )
    idempotency_pruning_interval_s: float = Field(
        _DAY, gt=0, le=30 * _DAY, description="Prune old idempotency records."
    )
    inbox_poll_interval_s: float = Field(
        10, gt=0, le=_DAY, description="Look for files renamed into the inbox folder."
    )
    breaker_monitor_interval_s: float = Field(
        10, gt=0, le=3600, description="Re-evaluate breaker windows as time passes."
    )
    metrics_textfile_interval_s: float = Field(
        60, gt=0, le=_DAY, description="Write the Prometheus metrics file."
    )
    scope_expansion_expiry_interval_s: float = Field(
        60, gt=0, le=_DAY, description="Expire scope expansions past their deadline."
    )
    governance_cycle_interval_s: float = Field(
        7 * _DAY, gt=0, le=30 * _DAY, description="Weekly report, readiness, scope expansion."
    )
    misfire_grace_time_s: int = Field(
        3600,
        ge=1,
        le=7 * 86_400,
        description="A run late by up to this much (a busy loop, a suspended host) still runs.",
    )
    drain_timeout_s: float = Field(
        30, gt=0, le=3600, description="On shutdown, wait this long for running tasks."
    )

    def interval(self, task: str) -> timedelta:
        """Return the configured interval of ``task``."""
        return timedelta(seconds=float(getattr(self, f"{task}_interval_s")))


class PatternsConfig(Section):
    """Pattern-scan rules (see ``agentd.core.patterns`` for what each threshold does)."""

    buying_pricing_visits: int = Field(
        2, gt=0, description="Buying signal: this many pricing-page visits within the window."
    )
    buying_window_days: float = Field(
        14.0, gt=0, description="Window of buying_pricing_visits, in days."
    )
    buying_combo_days: float = Field(
        7.0,
        gt=0,
        description="Buying signal: a pricing-page visit and an inbound email or meeting "
        "request, both within this many days.",
    )
    sentiment_window_days: float = Field(
        14.0, gt=0, description="Risk: rated interactions of the last N days are averaged."
    )
    sentiment_sample: int = Field(5, gt=0, description="Risk: average the last N of them.")
    sentiment_min_samples: int = Field(
        2, gt=0, description="Risk: an average needs at least this many rated interactions."
    )
    critical_sentiment: float = Field(
        -0.5, ge=-1, le=1, description="Critical risk: an average sentiment at most this."
    )
    medium_sentiment: float = Field(
        -0.2, ge=-1, le=1, description="Medium risk: an average sentiment at most this."
    )
    critical_tickets: int = Field(
        3, gt=0, description="Critical risk: this many inbound support tickets ..."
    )
    critical_tickets_days: float = Field(7.0, gt=0, description="... within this many days.")
    medium_tickets: int = Field(
        2, gt=0, description="Medium risk: this many inbound support tickets ..."
    )
    medium_tickets_days: float = Field(14.0, gt=0, description="... within this many days.")
    silence_days: float = Field(
        30.0, gt=0, description="Critical risk: no inbound interaction for this many days ..."
    )
    silence_active_days: float = Field(
        60.0, gt=0, description="... after an active period of this many days before it ..."
    )
    silence_min_prior_inbound: int = Field(
        3, gt=0, description="... with at least this many inbound interactions."
    )
    engagement_window_days: float = Field(
        14.0, gt=0, description="Engagement change: interactions of the last N days ..."
    )
    engagement_change_ratio: float = Field(
        0.5, gt=0, description="... against the N days before differ by this share ..."
    )
    engagement_min_count: int = Field(
        4, gt=0, description="... with at least this many in the busier span."
    )
    engagement_inbound_only: bool = Field(
        True, description="Engagement change counts inbound interactions only."
    )
    key_period_days: float = Field(
        14.0, gt=0, description="A persisting pattern is raised again at most once a period."
    )

    def rules(self) -> PatternRules:
        """Return the rules for the core (which checks their consistency).

        :raises InvalidArgument: inconsistent thresholds (the field is named).
        """
        return PatternRules(**self.model_dump())


class GoalsConfig(Section):
    """Goal tracking and goal-driven planning."""

    accounts_per_goal: int = Field(
        3, ge=1, le=100, description="Accounts a goal that is behind gets corrective intents for."
    )
    max_patterns_per_check: int = Field(
        5000, ge=1, le=1_000_000, description="Unplanned patterns one outreach check takes."
    )
    require_alignment: bool = Field(
        False,
        description="True: an autonomous intent that serves no active goal waits for approval "
        "(GOAL_NOT_ALIGNED).",
    )


class PlannerConfig(Section):
    """How often the planner may reach out to one account."""

    contact_cooldown_hours: float = Field(
        72.0,
        ge=0,
        le=24 * 365,
        description="No new outreach to an account while another is open or reached it within "
        "this many hours (0: only while one is open).",
    )


class DigestConfig(Section):
    """The daily digest files."""

    dir: Path = Field(Path("digest"), description="Folder of the digests (relative: STATE_DIR/…).")


class InboxConfig(Section):
    """The interactions inbox folder.

    Producers write elsewhere on the same file system and rename the finished
    file into the folder; the daemon imports it and moves it to ``done/`` or
    ``failed/`` (with ``NAME.reason.txt`` beside it).
    """

    dir: Path = Field(Path("inbox"), description="Inbox folder (relative: STATE_DIR/…).")
    skip_bad: bool = Field(
        False, description="Import the good rows of a file with bad ones (else reject it whole)."
    )
    max_file_bytes: int = Field(
        1_073_741_824, ge=1, description="Larger files are moved to failed/ unread."
    )


class LLMConfig(Section):
    """The Anthropic model (optional) and context summarisation."""

    api_key: SecretStr | None = Field(
        None, description="Anthropic API key; better: AGENTD_LLM__API_KEY or api_key_file."
    )
    api_key_file: Path | None = Field(
        None, description="File holding the key (e.g. a systemd credential)."
    )
    base_url: str | None = Field(None, description="API base URL (default: Anthropic's).")
    model: str = Field(DEFAULT_MODEL, description="Anthropic model name.")
    timeout_s: float = Field(30.0, gt=0, le=600, description="Longest one API call may take.")
    max_tokens: int = Field(1024, ge=1, le=64_000, description="Most tokens one answer may have.")
    max_retries: int = Field(2, ge=0, le=10, description="Retries of a failed API call.")
    summary_period_days: float = Field(
        30.0, gt=0, le=365, description="Interactions summarised: those of the last N days."
    )
    summary_refresh_days: float = Field(
        7.0, gt=0, le=365, description="A summary older than this is refreshed even if unchanged."
    )
    summary_max_sentences: int = Field(
        5, ge=0, le=50, description="Key points a deterministic summary quotes, at most."
    )
    summary_max_accounts: int = Field(
        200, ge=1, le=100_000, description="Accounts summarised per run (most recent first)."
    )
    agent_max_steps: int = Field(
        30, ge=1, le=500, description="Agent mode: most commands the model may plan for one task."
    )
    agent_max_tokens_per_operation: int = Field(
        200_000, ge=1, description="Agent mode: most tokens (in and out) one task may spend."
    )
    agent_max_cost_per_operation_usd: float = Field(
        2.0, gt=0, description="Agent mode: most US dollars one task may spend."
    )
    agent_max_tokens_per_day: int = Field(
        2_000_000, ge=1, description="Agent mode: most tokens all tasks may spend per UTC day."
    )
    agent_max_cost_per_day_usd: float = Field(
        20.0, gt=0, description="Agent mode: most US dollars all tasks may spend per UTC day."
    )
    agent_max_wall_s: float = Field(
        600.0,
        gt=0,
        le=86_400,
        description="Agent mode: longest a task may run, waits for approval not counted.",
    )
    agent_approval_timeout_s: float = Field(
        3600.0,
        gt=0,
        le=7 * 86_400,
        description="Agent mode: longest a step waits for approval before the task fails.",
    )
    input_usd_per_mtok: float = Field(
        3.0, ge=0, description="Price of a million input tokens, for the cost budgets."
    )
    output_usd_per_mtok: float = Field(
        15.0, ge=0, description="Price of a million output tokens, for the cost budgets."
    )

    @field_validator("base_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    def agent_limits(self) -> Limits:
        """Return agent mode's budgets."""
        return Limits(
            max_steps=self.agent_max_steps,
            max_tokens_per_operation=self.agent_max_tokens_per_operation,
            max_cost_per_operation_usd=self.agent_max_cost_per_operation_usd,
            max_tokens_per_day=self.agent_max_tokens_per_day,
            max_cost_per_day_usd=self.agent_max_cost_per_day_usd,
            max_wall_s=self.agent_max_wall_s,
        )

    def llm_settings(self) -> LLMSettings:
        """Return the client settings, reading ``api_key_file`` when set.

        :raises OSError: the key file cannot be read.
        """
        key = self.api_key.get_secret_value() if self.api_key else None
        if not key and self.api_key_file is not None:
            key = self.api_key_file.read_text(encoding="utf-8").strip()
        return LLMSettings(
            api_key=key or None,
            base_url=self.base_url,
            model=self.model,
            timeout_s=self.timeout_s,
            max_tokens=self.max_tokens,
            max_retries=self.max_retries,
        )
