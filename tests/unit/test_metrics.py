from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

import pytest

from agentd.core.breakers import (
    BreakerAction,
    BreakerEvent,
    BreakerEventKind,
    BreakerMetric,
    BreakerMonitor,
    BreakerRule,
    Severity,
)
from agentd.core.metrics import (
    MetricCounts,
    Rates,
    compute_rates,
    metric_families,
)
from agentd.errors import InvalidArgument
from agentd.services.metrics import exposition

NOW = datetime(2025, 11, 23, 12, 0, tzinfo=UTC)


def render_prometheus(
    counts: MetricCounts, rates: Rates, labels: dict[str, str], now: datetime
) -> str:
    return exposition(metric_families(counts, rates, labels, now))


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        (MetricCounts(), Rates(None, None, None, None, None)),
        (
            MetricCounts(
                intents_total=100,
                intents_approved=8,
                intents_rejected=1,
                intents_expired=1,
                intents_auto_executed=50,
                intents_blocked=30,
                executions_succeeded=196,
                executions_failed=4,
                executions_rolled_back=49,
            ),
            Rates(0.98, 0.8, 0.25, 0.02, 0.04),
        ),
        # executions without reviewed intents: the approval rate is undefined, not 0
        (MetricCounts(intents_total=5, executions_succeeded=5), Rates(1.0, None, 0.0, 0.0, 0.0)),
        # only failures: success 0, rollback undefined
        (MetricCounts(intents_total=2, executions_failed=2), Rates(0.0, None, None, 1.0, 1.0)),
        # auto-executed and blocked intents never reach a person
        (
            MetricCounts(intents_total=9, intents_auto_executed=5, intents_blocked=4),
            Rates(None, None, None, None, 0.0),
        ),
    ],
)
def test_compute_rates(counts: MetricCounts, expected: Rates) -> None:
    assert compute_rates(counts) == expected


def test_error_rate_is_the_breakers_ratio_and_failures_per_intent_another_name() -> None:
    # 1 of 4 finished executions failed, out of 20 intents submitted.
    counts = MetricCounts(intents_total=20, executions_succeeded=3, executions_failed=1)
    monitor = BreakerMonitor(
        [
            BreakerRule(
                "rate",
                BreakerMetric.ERROR_RATE,
                0.2,
                timedelta(minutes=5),
                BreakerAction.ALERT_ONLY,
                Severity.LOW,
                min_events=1,
            )
        ]
    )
    kinds = [BreakerEventKind.EXECUTION_SUCCEEDED] * 3 + [BreakerEventKind.EXECUTION_FAILED]
    trips = [
        trip
        for n, kind in enumerate(kinds)
        for trip in monitor.observe(BreakerEvent(NOW + timedelta(seconds=n), kind, "a"))
    ]
    assert [t.value for t in trips] == [0.25]
    rates = compute_rates(counts)
    assert rates.error_rate == trips[0].value == 0.25
    assert rates.intent_failure_rate == 0.05
    families = parse_exposition(render_prometheus(counts, rates, {}, NOW))
    assert families["agentd_error_ratio"]["samples"] == [({}, 0.25)]
    assert families["agentd_intent_failure_ratio"]["samples"] == [({}, 0.05)]
    assert families["agentd_error_ratio"]["help"] != families["agentd_intent_failure_ratio"]["help"]


def test_counts_must_not_be_negative() -> None:
    with pytest.raises(InvalidArgument):
        MetricCounts(executions_failed=-1)
    with pytest.raises(InvalidArgument):
        MetricCounts(incidents_by_severity={"critical": -1})


def test_incident_totals() -> None:
    counts = MetricCounts(incidents_by_severity={"critical": 2, "low": 3})
    assert (counts.incidents_total, counts.critical_incidents) == (5, 2)


# A strict reader of the text exposition format, enough to check our own output.
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\", '"': '"'}[m[1]], value)


def parse_exposition(text: str) -> dict[str, dict[str, object]]:
    """Parse Prometheus text; fail on anything the format does not allow."""
    assert text.endswith("\n")
    families: dict[str, dict[str, object]] = {}
    current: str | None = None
    for line in text.splitlines():
        assert line, "no blank lines"
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert name not in families, f"family {name} appears twice"
            families[name] = {"help": help_text, "type": None, "samples": []}
            current = name
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert name == current
            assert kind in ("counter", "gauge")
            families[name]["type"] = kind
        else:
            match = _SAMPLE.match(line)
            assert match, f"bad sample line {line!r}"
            name, _, labels_text, value = match.groups()
            assert name == current, "samples of a family are contiguous, after HELP and TYPE"
            labels: dict[str, str] = {}
            rest = labels_text or ""
            while rest:
                label = _LABEL.match(rest)
                assert label, f"bad labels {rest!r}"
                assert label[1] not in labels
                labels[label[1]] = _unescape(label[2])
                rest = rest[label.end() :]
            number = float(value)
            assert not math.isnan(number)
            samples = families[name]["samples"]
            assert isinstance(samples, list)
            samples.append((labels, number))
    return families


def test_prometheus_output_parses_and_carries_every_number() -> None:
    counts = MetricCounts(
        intents_total=10,
        intents_auto_executed=4,
        intents_approved=3,
        intents_rejected=1,
        intents_blocked=2,
        executions_succeeded=6,
        executions_failed=1,
        executions_rolled_back=1,
        incidents_by_severity={"critical": 1, "high": 2},
        incidents_from_autonomous=1,
        constraint_violations=5,
        emergency_aborts=6,
        gate_triggers=7,
    )
    text = render_prometheus(counts, compute_rates(counts), {"tenant": "acme"}, NOW)
    families = parse_exposition(text)
    assert all(name.startswith("agentd_") for name in families)
    assert all(f["type"] == "counter" for n, f in families.items() if n.endswith("_total"))

    def value(name: str, **labels: str) -> float:
        for got_labels, number in families[name]["samples"]:  # type: ignore[attr-defined]
            if got_labels == {"tenant": "acme", **labels}:
                return float(number)
        raise AssertionError(f"no sample {name} {labels}")

    assert value("agentd_intents_total") == 10
    assert value("agentd_intent_outcomes_total", outcome="auto_executed") == 4
    assert value("agentd_intent_outcomes_total", outcome="blocked") == 2
    assert value("agentd_executions_total", result="rolled_back") == 1
    assert value("agentd_incidents_total", severity="high") == 2
    assert value("agentd_incidents_total", severity="low") == 0
    assert value("agentd_incidents_from_autonomous_actions_total") == 1
    assert value("agentd_safety_events_total", kind="gate_trigger") == 7
    assert value("agentd_success_ratio") == pytest.approx(6 / 7)
    assert value("agentd_approval_ratio") == pytest.approx(0.75)
    assert families["agentd_success_ratio"]["type"] == "gauge"
    assert value("agentd_metrics_generated_timestamp_seconds") == NOW.timestamp()
    # node_exporter's textfile collector refuses explicit timestamps: two fields per sample
    for line in text.splitlines():
        if not line.startswith("#"):
            assert len(line.rsplit("} ", 1)[-1].split(" ")) == 1


def test_undefined_rates_are_left_out() -> None:
    text = render_prometheus(MetricCounts(), compute_rates(MetricCounts()), {}, NOW)
    families = parse_exposition(text)
    assert "agentd_success_ratio" not in families
    assert "agentd_rollback_ratio" not in families
    assert families["agentd_intents_total"]["samples"] == [({}, 0.0)]


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ('say "hi"', 'say \\"hi\\"'),
        ("back\\slash", "back\\\\slash"),
        ("two\nlines", "two\\nlines"),
        ("plain", "plain"),
    ],
)
def test_label_escaping(raw: str, escaped: str) -> None:
    text = render_prometheus(MetricCounts(), compute_rates(MetricCounts()), {"tenant": raw}, NOW)
    families = parse_exposition(text)
    labels, _ = families["agentd_intents_total"]["samples"][0]  # type: ignore[index]
    assert labels == {"tenant": raw}
    assert f'agentd_intents_total{{tenant="{escaped}"}} 0.0' in text.splitlines()


def test_unusual_severity_is_exported_too() -> None:
    counts = MetricCounts(incidents_by_severity={"sev0": 1})
    families = parse_exposition(render_prometheus(counts, compute_rates(counts), {}, NOW))
    samples = families["agentd_incidents_total"]["samples"]
    assert ({"severity": "sev0"}, 1.0) in samples  # type: ignore[operator]


@pytest.mark.parametrize(
    "name", ["1tenant", "ten-ant", "__reserved", "severity", "kind", "breaker", "action_type"]
)
def test_bad_label_names(name: str) -> None:
    with pytest.raises(InvalidArgument):
        render_prometheus(MetricCounts(), compute_rates(MetricCounts()), {name: "x"}, NOW)


def test_naive_now_is_rejected() -> None:
    with pytest.raises(InvalidArgument):
        render_prometheus(MetricCounts(), compute_rates(MetricCounts()), {}, datetime(2025, 1, 1))
