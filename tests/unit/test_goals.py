from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from agentd.core.goals import (
    CORRECTIVE_ACTIONS,
    Goal,
    GoalSpec,
    GoalStatus,
    GoalType,
    MetricFacts,
    Verdict,
    compute_metrics,
    evaluate_goal,
    suggest_actions,
    validate_goal,
)
from agentd.errors import InvalidArgument

START = datetime(2024, 6, 1, tzinfo=UTC)
END = datetime(2024, 7, 1, tzinfo=UTC)  # 30 days
GOAL = Goal("g-1", "t1", GoalType.ACTIVITY, 100.0, START, END, "June activity")


def test_validate_goal_with_bare_dates_covers_the_end_day() -> None:
    spec = validate_goal("t1", "pipeline", "12", "2024-07-01", "2024-09-30", "  Q3   pipeline ")
    assert spec == GoalSpec(
        tenant="t1",
        goal_type=GoalType.PIPELINE,
        target=12.0,
        start=datetime(2024, 7, 1, tzinfo=UTC),
        end=datetime(2024, 10, 1, tzinfo=UTC),
        name="Q3 pipeline",
    )


def test_validate_goal_default_name_and_datetimes() -> None:
    start = datetime(2024, 7, 1, 9, tzinfo=UTC)
    end = datetime(2024, 7, 2, 9, tzinfo=UTC) + timedelta(hours=2)
    spec = validate_goal("t1", GoalType.REVENUE, 50_000, start, end)
    assert spec.name == "revenue 50000 by 2024-07-02"
    assert (spec.start, spec.end) == (start, end)
    same_day = validate_goal("t1", "activity", 5, date(2024, 7, 1), date(2024, 7, 1))
    assert same_day.end - same_day.start == timedelta(days=1)


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"target": 0}, "target", "greater than 0"),
        ({"target": -5}, "target", "greater than 0"),
        ({"target": "lots"}, "target", "not a number"),
        ({"target": float("nan")}, "target", "greater than 0"),
        ({"target": float("inf")}, "target", "greater than 0"),
        ({"goal_type": "sales"}, "type", "unknown type 'sales'"),
        ({"start": "2024-09-30", "end": "2024-09-29"}, "end", "must be after start"),
        (
            {"start": "2024-07-01T00:00:00+00:00", "end": "2024-07-01T00:00:00+00:00"},
            "end",
            "after start",
        ),
        ({"start": "next monday"}, "start", "not an ISO 8601"),
        ({"end": "2024-13-01"}, "end", "not an ISO 8601"),
        ({"start": datetime(2024, 7, 1)}, "start", "no UTC offset"),
        ({"end": "2024-09-30T00:00:00"}, "end", "no UTC offset"),
        ({"name": "x" * 201}, "name", "longer than 200"),
        ({"tenant": " "}, "tenant", "empty"),
    ],
)
def test_validation_errors_name_the_field(
    changes: dict[str, Any], field: str, fragment: str
) -> None:
    args: dict[str, Any] = {
        "tenant": "t1",
        "goal_type": "pipeline",
        "target": 10,
        "start": "2024-07-01",
        "end": "2024-09-30",
        "name": None,
    }
    args.update(changes)
    with pytest.raises(InvalidArgument) as caught:
        validate_goal(**args)
    assert caught.value.details == {"field": field}
    assert caught.value.message.startswith(f"goal {field}: ")
    assert fragment in caught.value.message


MID = START + (END - START) / 2


@pytest.mark.parametrize(
    ("now", "current", "status", "verdict", "elapsed"),
    [
        (START - timedelta(days=3), 0.0, GoalStatus.ACTIVE, Verdict.ON_TRACK, 0.0),
        (START, 0.0, GoalStatus.ACTIVE, Verdict.ON_TRACK, 0.0),
        (MID, 50.0, GoalStatus.ACTIVE, Verdict.ON_TRACK, 0.5),
        (MID, 49.9, GoalStatus.ACTIVE, Verdict.BEHIND, 0.5),
        (START + timedelta(days=3), 5.0, GoalStatus.ACTIVE, Verdict.BEHIND, 0.1),
        (MID, 100.0, GoalStatus.COMPLETED, Verdict.COMPLETED, 0.5),
        (START + timedelta(days=1), 130.0, GoalStatus.COMPLETED, Verdict.COMPLETED, 1 / 30),
        (END - timedelta(seconds=1), 99.0, GoalStatus.ACTIVE, Verdict.BEHIND, 1 - 1 / (30 * 86400)),
        (END, 99.0, GoalStatus.MISSED, Verdict.MISSED, 1.0),
        (END, 100.0, GoalStatus.COMPLETED, Verdict.COMPLETED, 1.0),
        (END + timedelta(days=10), 10.0, GoalStatus.MISSED, Verdict.MISSED, 1.0),
    ],
)
def test_goal_arithmetic(
    now: datetime, current: float, status: GoalStatus, verdict: Verdict, elapsed: float
) -> None:
    evaluation = evaluate_goal(GOAL, current, now)
    assert (evaluation.status, evaluation.verdict) == (status, verdict)
    assert evaluation.elapsed_ratio == pytest.approx(elapsed)
    assert evaluation.progress_ratio == pytest.approx(current / 100.0)
    assert evaluation.expected == pytest.approx(100.0 * elapsed)
    assert evaluation.status_changed is (status is not GoalStatus.ACTIVE)
    assert evaluation.goal_id == "g-1"


@pytest.mark.parametrize(
    ("stored", "current", "now", "verdict"),
    [
        (GoalStatus.COMPLETED, 0.0, MID, Verdict.COMPLETED),
        (GoalStatus.COMPLETED, 0.0, END + timedelta(days=1), Verdict.COMPLETED),
        (GoalStatus.MISSED, 500.0, END + timedelta(days=1), Verdict.MISSED),
        (GoalStatus.MISSED, 500.0, MID, Verdict.MISSED),
    ],
)
def test_final_status_sticks(
    stored: GoalStatus, current: float, now: datetime, verdict: Verdict
) -> None:
    goal = Goal("g-1", "t1", GoalType.ACTIVITY, 100.0, START, END, "x", status=stored)
    evaluation = evaluate_goal(goal, current, now)
    assert evaluation.verdict is verdict
    assert evaluation.status_changed is False


def test_spec_evaluates_as_a_new_goal() -> None:
    spec = validate_goal("t1", "activity", 10, "2024-06-01", "2024-06-30")
    assert evaluate_goal(spec, 2, MID).verdict is Verdict.BEHIND
    assert evaluate_goal(spec, 2, MID).goal_id is None
    assert Goal.from_spec("g-9", spec).status is GoalStatus.ACTIVE


@pytest.mark.parametrize("current", [float("nan"), float("inf")])
def test_evaluation_rejects_non_finite_current(current: float) -> None:
    with pytest.raises(InvalidArgument) as caught:
        evaluate_goal(GOAL, current, MID)
    assert caught.value.details == {"field": "current"}


def test_describe_reads_as_a_sentence() -> None:
    assert (
        evaluate_goal(GOAL, 20, MID).describe()
        == "behind: 20 of 100 (20%) with 50% of the time elapsed"
    )


@pytest.mark.parametrize(
    ("goal_type", "actions"),
    [
        (GoalType.PIPELINE, ["qualify_conversation", "send_follow_up_email"]),
        (GoalType.ACTIVITY, ["send_follow_up_email", "schedule_meeting"]),
        (GoalType.QUALITY, ["update_account_context", "create_briefing"]),
        (GoalType.REVENUE, ["send_proposal"]),
    ],
)
def test_suggestions_per_goal_type_when_behind(goal_type: GoalType, actions: list[str]) -> None:
    evaluation = evaluate_goal(GOAL, 20, MID)
    suggestions = suggest_actions(goal_type, evaluation)
    assert [s.action_type for s in suggestions] == actions
    assert all(
        "20 of 100 (20%)" in s.rationale and "30 short of pace" in s.rationale for s in suggestions
    )
    assert set(CORRECTIVE_ACTIONS) == set(GoalType)


@pytest.mark.parametrize(
    ("current", "now"),
    [(60.0, MID), (100.0, MID), (10.0, END)],
    ids=["on_track", "completed", "missed"],
)
def test_no_suggestions_unless_behind(current: float, now: datetime) -> None:
    assert suggest_actions(GoalType.ACTIVITY, evaluate_goal(GOAL, current, now)) == []


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (MetricFacts(), {"pipeline": 0.0, "activity": 0.0, "quality": 0.0, "revenue": 0.0}),
        (
            MetricFacts(
                pipeline_accounts=7,
                outbound_interactions=12,
                executed_actions=3,
                rated_interactions=8,
                non_negative_interactions=6,
                executions_total=10,
                executions_succeeded=1,
                closed_won_count=2,
                closed_won_value=42_000.0,
            ),
            {"pipeline": 7.0, "activity": 15.0, "quality": 75.0, "revenue": 42_000.0},
        ),
        (
            MetricFacts(executions_total=4, executions_succeeded=3, closed_won_count=2),
            {"pipeline": 0.0, "activity": 0.0, "quality": 75.0, "revenue": 2.0},
        ),
        (
            MetricFacts(closed_won_count=3, closed_won_value=0.0),
            {"pipeline": 0.0, "activity": 0.0, "quality": 0.0, "revenue": 0.0},
        ),
    ],
    ids=["nothing", "everything", "quality-from-executions", "zero-value-wins-over-count"],
)
def test_compute_metrics(facts: MetricFacts, expected: dict[str, float]) -> None:
    assert {k.value: v for k, v in compute_metrics(facts).items()} == expected


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"pipeline_accounts": -1}, "pipeline_accounts"),
        ({"closed_won_value": -1.0}, "closed_won_value"),
        ({"rated_interactions": 1, "non_negative_interactions": 2}, "non_negative_interactions"),
        ({"executions_total": 1, "executions_succeeded": 2}, "executions_succeeded"),
    ],
)
def test_bad_metric_facts_name_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        MetricFacts(**changes)
    assert caught.value.details == {"field": field}


@pytest.mark.parametrize(
    ("end", "last_day"),
    [
        ("2026-12-01", "2026-12-01"),  # a bare date: that whole day
        ("2026-12-01T00:00:00+00:00", "2026-11-30"),  # an instant: excluded
        ("2026-12-01T10:30:00+02:00", "2026-12-01"),
    ],
)
def test_last_day_is_the_day_the_operator_named(end: str, last_day: str) -> None:
    spec = validate_goal("t1", "activity", 5, "2026-11-01", end, None)
    assert Goal.from_spec("goal_1", spec).last_day.isoformat() == last_day
