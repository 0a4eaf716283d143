"""`agentd check-config`: the resolved values, readable modes, host checks, a verdict."""

from __future__ import annotations

import grp
import json
import os
from pathlib import Path

import pytest

from agentd import cli

MISSING_GROUP = "agentd-no-such-group"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("AGENTD_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AGENTD_STATE_DIR", str(tmp_path / "state"))


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "agentd.toml"
    path.write_text(text)
    return str(path)


def test_prints_json_with_an_octal_mode_then_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = grp.getgrgid(os.getgid()).gr_name
    cfg = _config(tmp_path, f'[control]\nsocket_mode = 0o600\ngroup = "{existing}"\n')
    assert cli.main(["check-config", "--config", cfg]) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)  # stdout stays plain JSON
    assert data["control"]["socket_mode"] == "0o600"
    assert data["control"]["group"] == existing
    assert err.splitlines()[-1] == f"agentd: configuration OK ({cfg})"


@pytest.mark.parametrize("key", ["group", "approvers_group"])
def test_a_group_missing_on_this_host_is_refused(
    key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(KeyError):
        grp.getgrnam(MISSING_GROUP)  # the host really has no such group
    cfg = _config(tmp_path, f'[control]\n{key} = "{MISSING_GROUP}"\n')
    assert cli.main(["check-config", "--config", cfg]) == cli.EXIT_CONFIG
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{cfg}: control.{key}: no group '{MISSING_GROUP}' on this host" in err
    assert "OK" not in err


def test_a_missing_group_from_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AGENTD_CONTROL__GROUP", MISSING_GROUP)
    assert cli.main(["check-config"]) == cli.EXIT_CONFIG
    err = capsys.readouterr().err
    assert "environment variable AGENTD_CONTROL__GROUP: control.group: no group" in err


def test_a_postgresql_url_is_shown_without_its_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path, '[store]\nurl = "postgresql://agentd:s3cret@db.internal:5432/agentd"\n')
    assert cli.main(["check-config", "--config", cfg]) == 0
    out, _ = capsys.readouterr()
    data = json.loads(out)
    assert data["store"]["url"] == "postgresql://agentd:***@db.internal:5432/agentd"
    assert data["database"] == "postgresql://agentd:***@db.internal:5432/agentd"
    assert "s3cret" not in out


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://agentd:s3cret@db/agentd", "must start with postgresql://"),
        ("postgresql://agentd:s3cret@db:54x2/agentd", "is not a valid URL"),
        ("postgresql://agentd:s3cret@[::1/agentd", "is not a valid URL"),
    ],
)
def test_a_bad_store_url_is_refused_without_showing_its_password(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    url: str,
    problem: str,
) -> None:
    monkeypatch.setenv("AGENTD_STORE__URL", url)
    assert cli.main(["check-config"]) != 0
    _, err = capsys.readouterr()
    assert "environment variable AGENTD_STORE__URL: store.url" in err
    assert problem in err
    assert "s3cret" not in err and "agentd:***@" in err
