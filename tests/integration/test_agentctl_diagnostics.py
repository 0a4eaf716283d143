"""agentctl blames the right place: the option, the file, the thing at the socket path."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from agentd.ctl.main import main


@pytest.fixture(autouse=True)
def _no_socket_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AGENTD_SOCKET_PATH", "AGENTD_CONFIG", "AGENTD_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AGENTD_STATE_DIR", str(tmp_path / "state"))


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_a_bad_timeout_is_a_usage_error(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([f"--timeout={value}", "status"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --timeout: {value!r} is not a positive number of seconds" in err
    assert "Traceback" not in err


def test_a_missing_config_file_is_named_not_an_unreachable_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.toml"
    assert main(["--config", str(missing), "status"]) == 2
    err = capsys.readouterr().err
    assert f"configuration file {missing} (from --config) not found" in err
    assert "cannot reach" not in err


def test_a_bad_config_from_the_environment_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "agentd.toml"
    bad.write_text("[control\n")
    monkeypatch.setenv("AGENTD_CONFIG", str(bad))
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert f"configuration file {bad} (from AGENTD_CONFIG) is not valid TOML" in err
    # --socket needs no configuration: nothing is read, the socket is tried.
    assert main(["--socket", str(tmp_path / "none.sock"), "status"]) == 3


def test_a_regular_file_at_the_socket_path_is_not_called_a_stale_socket(
    short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    regular = short_tmp / "s.sock"
    regular.write_text("")
    assert main(["--socket", str(regular), "ping"]) == 3
    err = capsys.readouterr().err
    assert "not a socket" in err and "stale" not in err

    # A socket nobody listens on any more is the stale one.
    stale = short_tmp / "t.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(stale))
    sock.close()
    assert main(["--socket", str(stale), "ping"]) == 3
    assert "stale socket" in capsys.readouterr().err
