"""The generated references under docs/ match the code they are generated from."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from agentd import docgen
from agentd.config import Settings, load_settings
from agentd.sections import Section

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize(
    ("which", "source"),
    [
        ("config", "the settings model"),
        ("agentctl", "agentctl's parser"),
        ("agentd", "agentd's parsers"),
    ],
)
def test_committed_reference_is_current(which: str, source: str) -> None:
    name, render = docgen.DOCS[which]
    committed = (DOCS / name).read_text(encoding="utf-8")
    assert committed == render(), (
        f"docs/{name} is out of date with {source}; "
        f"regenerate it with: .venv/bin/agentd docs {which}"
    )


def test_check_mode_reports_a_stale_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert docgen.main(["config"], tmp_path) == 0
    assert docgen.main(["config"], tmp_path, check=True) == 0
    path = tmp_path / "configuration.md"
    path.write_text(path.read_text(encoding="utf-8") + "hand edit\n", encoding="utf-8")
    assert docgen.main(["config"], tmp_path, check=True) == 1
    assert "regenerate it: agentd docs config" in capsys.readouterr().err
    assert path.read_text(encoding="utf-8").endswith("hand edit\n")  # --check writes nothing


def _leaf_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        models = [a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
        if models:
            inner = "NAME." if getattr(ann, "__origin__", None) is dict else ""
            out += _leaf_keys(models[0], f"{prefix}{name}.{inner}")
        else:
            out.append(prefix + name)
    return out


def test_every_key_of_the_model_is_documented() -> None:
    text = docgen.render_config()
    tables: dict[str, set[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("## "):
            current = line[3:].strip("[] ").replace("Top-level keys", "")
        match = re.match(r"\| `([a-z_0-9]+)` \|", line)
        if match:
            tables.setdefault(current, set()).add(match.group(1))
    keys = _leaf_keys(Settings)
    assert len(keys) > 100
    for key in keys:
        section, _, leaf = key.rpartition(".")
        assert leaf in tables.get(section, set()), f"{key} missing from the reference"


def test_a_new_section_is_documented_without_code_changes() -> None:
    class RuleConfig(Section):
        """One breaker rule."""

        name: str = Field(description="Rule name.")
        threshold: float = Field(0.05, gt=0, le=1, description="Trip above this.")

    class TripwiresConfig(Section):
        """Circuit breakers."""

        enabled: bool = Field(True, description="Watch at all.")
        rules: list[RuleConfig] = Field(default_factory=list, description="The rules.")
        legacy: list[dict[str, Any]] = Field(
            default_factory=lambda: [
                {"name": "high_error_rate", "window": "5m"},
                {"name": "critical_incident", "window": "1m"},
            ],
            description="Rules as plain tables.",
        )

    class Extended(Settings):
        tripwires: TripwiresConfig = TripwiresConfig()

    text = docgen.render_config(Extended)
    assert "## [tripwires]\n\nCircuit breakers.\n" in text
    assert "| `enabled` | boolean | `true` | `AGENTD_TRIPWIRES__ENABLED` | Watch at all. |" in text
    assert "## [[tripwires.rules]]" in text
    assert (
        "| `threshold` | number, > 0, ≤ 1 | `0.05` | part of `AGENTD_TRIPWIRES__RULES` (JSON) |"
        in text
    )
    assert (
        '[[tripwires.legacy]]\nname = "high_error_rate"\nwindow = "5m"\n\n'
        '[[tripwires.legacy]]\nname = "critical_incident"\nwindow = "1m"\n```' in text
    )
    assert "tripwires" not in docgen.render_config()


def test_defaults_do_not_depend_on_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    first = docgen.render_config()
    for name, value in {
        "HOME": "/home/someone-else",
        "STATE_DIRECTORY": "/var/lib/elsewhere",
        "XDG_STATE_HOME": "/xdg",
        "RUNTIME_DIRECTORY": "/run/elsewhere",
        "LOGS_DIRECTORY": "/var/log/elsewhere",
    }.items():
        monkeypatch.setenv(name, value)
    assert docgen.render_config() == first
    assert str(docgen.PROJECT) not in first
    assert str(docgen.PROJECT) not in docgen.render_agentctl() + docgen.render_agentd()
    assert '| `state_dir` | path | `"~/.local/state/agentd"` |' in first


@pytest.mark.parametrize(
    ("documented", "value", "read"),
    [
        ("AGENTD_CONTROL__READ_TIMEOUT_S", "5", lambda s: s.control.read_timeout_s == 5),
        (
            "AGENTD_TENANTS__<name>__BUDGET__PER_ACCOUNT_DAILY",
            "3",
            lambda s: s.tenants["t1"].budget.per_account_daily == 3,
        ),
        (
            "AGENTD_EXECUTION__WINDOWS__<name>__START",
            "09:00",
            lambda s: s.execution.windows["t1"].start == "09:00",
        ),
        (
            "AGENTD_BROWSER__SERVICES__<name>__BASE_URL",
            "http://127.0.0.1:1",
            lambda s: s.browser.services["t1"].base_url == "http://127.0.0.1:1",
        ),
        (
            "AGENTD_AUTONOMY__ALLOWLIST",
            '["log_interaction"]',
            lambda s: s.autonomy.allowlist == ["log_interaction"],
        ),
    ],
)
def test_documented_environment_variables_work(
    monkeypatch: pytest.MonkeyPatch, documented: str, value: str, read: Any
) -> None:
    assert f"`{documented}`" in docgen.render_config()
    monkeypatch.delenv("AGENTD_CONFIG", raising=False)
    monkeypatch.setenv(documented.replace("<name>", "T1"), value)
    assert read(load_settings(None))
