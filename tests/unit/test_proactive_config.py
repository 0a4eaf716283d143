"""Proactive-loop configuration, day parsing and agentctl's parser."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from datetime import date, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from agentd.core.patterns import DEFAULT_RULES
from agentd.ctl import proactive as ctl
from agentd.errors import InvalidArgument
from agentd.proactive_config import PatternsConfig, SchedulerConfig
from agentd.services.digest import parse_day
from agentd.services.scheduler import TASK_NAMES


def test_pattern_defaults_equal_the_core_defaults() -> None:
    assert asdict(PatternsConfig().rules()) == asdict(DEFAULT_RULES)


def test_inconsistent_rules_name_the_field() -> None:
    with pytest.raises(InvalidArgument) as err:
        PatternsConfig(sentiment_min_samples=9).rules()
    assert err.value.details["field"] == "sentiment_min_samples"


@pytest.mark.parametrize(
    ("task", "seconds"),
    [
        ("pattern_scan", 6 * 3600),
        ("proactive_outreach_check", 3600),
        ("goal_progress_update", 86400),
        ("daily_digest_generation", 86400),
        ("context_summarization", 86400),
    ],
)
def test_spec_intervals_are_the_defaults(task: str, seconds: int) -> None:
    assert SchedulerConfig().interval(task) == timedelta(seconds=seconds)


def test_every_task_has_an_interval_and_grace_is_an_int() -> None:
    cfg = SchedulerConfig()
    assert all(cfg.interval(name).total_seconds() > 0 for name in TASK_NAMES)
    with pytest.raises(ValidationError):
        SchedulerConfig(misfire_grace_time_s=1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, date(2025, 7, 2)),
        ("today", date(2025, 7, 2)),
        ("yesterday", date(2025, 7, 1)),
        ("2025-01-31", date(2025, 1, 31)),
    ],
)
def test_parse_day(text: str | None, expected: date) -> None:
    assert parse_day(text, date(2025, 7, 2)) == expected


def test_parse_day_refuses_garbage() -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_day("July", date(2025, 7, 2))
    assert err.value.details["field"] == "date"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentctl")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, run: Any, summary: str, example: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=summary)
        p.set_defaults(run=run)
        return p

    def group(name: str, summary: str) -> Any:
        inner = sub.add_parser(name).add_subparsers(dest=f"{name}_command", required=True)

        def add_inner(sub_name: str, run: Any, s: str, e: str) -> argparse.ArgumentParser:
            p = inner.add_parser(sub_name)
            p.set_defaults(run=run)
            return p

        return add_inner

    ctl.register(add, group)
    return parser


@pytest.mark.parametrize(
    ("argv", "run"),
    [
        (["goals"], ctl.goals_list),
        (["goals", "--all"], ctl.goals_list),
        (
            [
                "goals",
                "add",
                "--tenant",
                "t",
                "--type",
                "revenue",
                "--target",
                "5",
                "--start",
                "2025-01-01",
                "--end",
                "2025-02-01",
            ],
            ctl.goals_add,
        ),
        (["goals", "show", "goal_1"], ctl.goals_show),
        (["tasks"], ctl.tasks),
        (["run-task", "pattern_scan", "--wait"], ctl.run_task),
        (["digest", "--date", "2025-01-01", "--show"], ctl.digest),
        (["interactions", "import", "x.csv", "--skip-bad"], ctl.interactions_import),
    ],
)
def test_agentctl_parses(argv: list[str], run: Any) -> None:
    assert _parser().parse_args(argv).run is run
