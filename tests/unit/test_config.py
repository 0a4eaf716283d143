"""Configuration: defaults, the shipped file, overrides and every kind of bad input."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from agentd.config import Settings, load_settings
from agentd.errors import ConfigInvalid

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "agentd.toml"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("AGENTD_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AGENTD_STATE_DIR", str(tmp_path / "state"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agentd.toml"
    path.write_text(text)
    return path


def test_shipped_file_equals_builtin_defaults() -> None:
    from_file = load_settings(SHIPPED)
    builtin = load_settings(None)
    assert from_file.model_dump(exclude={"config_file"}) == builtin.model_dump(
        exclude={"config_file"}
    )
    # And the file really sets the sections it documents.
    data = tomllib.loads(SHIPPED.read_text())
    assert {"control", "store", "log", "daemon"} <= set(data)


def test_paths_default_under_state_dir(tmp_path: Path) -> None:
    s = load_settings(None)
    assert s.state_dir == tmp_path / "state"
    assert s.resolved_socket_path == tmp_path / "state" / "agentd.sock"
    assert s.resolved_log_dir == tmp_path / "state" / "logs"
    assert s.database_path == tmp_path / "state" / "agentd.sqlite3"


def test_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write(tmp_path, "[control]\nread_timeout_s = 3\n")
    monkeypatch.setenv("AGENTD_CONTROL__READ_TIMEOUT_S", "7.5")
    monkeypatch.setenv("AGENTD_SOCKET_PATH", str(tmp_path / "x.sock"))
    s = load_settings(cfg)
    assert s.control.read_timeout_s == 7.5
    assert s.resolved_socket_path == tmp_path / "x.sock"
    assert s.config_file == cfg


def test_agentd_config_env_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write(tmp_path, "[log]\nlevel = 'DEBUG'\n")
    monkeypatch.setenv("AGENTD_CONFIG", str(cfg))
    assert load_settings(None).log.level == "DEBUG"


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        (
            "[control]\nread_timeot_s = 3\n",
            "control.read_timeot_s",
            "did you mean 'read_timeout_s'",
        ),
        ("stat_dir = '/x'\n", "stat_dir", "unknown key"),
        ("[nonsense]\na = 1\n", "nonsense", "unknown key"),
        ("[control]\nread_timeout_s = 'soon'\n", "control.read_timeout_s", "valid number"),
        ("[control]\nread_timeout_s = -1\n", "control.read_timeout_s", "greater than 0"),
        ("[control]\nsocket_mode = 0o666\n", "control.socket_mode", "0o600 or 0o660"),
        ("[store]\nsynchronous = 'OFF'\n", "store.synchronous", "'FULL' or 'NORMAL'"),
        ("[log]\nfile_name = '../x'\n", "log.file_name", "plain file name"),
        ("[control]\nmax_connections = 0\n", "control.max_connections", "greater than or equal"),
        (
            "[control]\nmax_connections = 8\nreserved_connections = 8\n",
            "control",
            "must be less than max_connections",
        ),
    ],
)
def test_bad_file_names_file_and_key(tmp_path: Path, text: str, key: str, fragment: str) -> None:
    cfg = write(tmp_path, text)
    with pytest.raises(ConfigInvalid) as info:
        load_settings(cfg)
    message = info.value.message
    assert str(cfg) in message
    assert f"{key}:" in message
    assert fragment in message


def test_bad_env_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTD_LOG__LEVEL", "LOUD")
    with pytest.raises(ConfigInvalid) as info:
        load_settings(None)
    assert "environment variable AGENTD_LOG__LEVEL: log.level" in info.value.message


def test_unknown_nested_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTD_CONTROL__BOGUS", "1")
    with pytest.raises(ConfigInvalid) as info:
        load_settings(None)
    assert "control.bogus: unknown key" in info.value.message


def test_not_toml(tmp_path: Path) -> None:
    cfg = write(tmp_path, "[control\n")
    with pytest.raises(ConfigInvalid, match="not valid TOML"):
        load_settings(cfg)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid, match="not found"):
        load_settings(tmp_path / "nope.toml")


def test_socket_path_too_long(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTD_SOCKET_PATH", "/tmp/" + "x" * 120)
    with pytest.raises(ConfigInvalid, match="AGENTD_SOCKET_PATH: socket_path"):
        load_settings(None)


def test_all_errors_reported_at_once(tmp_path: Path) -> None:
    cfg = write(
        tmp_path, "[control]\nread_timeout_s = 'x'\nbogus = 1\n[store]\nsynchronous = 'OFF'\n"
    )
    with pytest.raises(ConfigInvalid) as info:
        load_settings(cfg)
    assert len(info.value.details["errors"]) == 3


def test_loading_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTD_STATE_DIR", str(tmp_path / "never"))
    Settings()
    load_settings(None)
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[guardrails]\nhard_stop = ["send_follow_up_email"]\n', "send_follow_up_email"),
        ('[autonomy]\nallowlist = ["commit_pricing"]\n', "hard-stop"),
        ('[guardrails]\ngated_stages = ["limbo"]\n', "limbo"),
        ('[tenants."Bad Tenant!".budget]\nper_tenant_daily = 3\n', "Bad Tenant!"),
        ("[budget]\nper_account_daily = -1\n", "budget.per_account_daily"),
        ('[autonomy]\nlevel = "L5"\n', "autonomy.level"),
    ],
)
def test_bad_policy_tables_name_file_and_problem(tmp_path: Path, text: str, fragment: str) -> None:
    cfg = write(tmp_path, text)
    with pytest.raises(ConfigInvalid) as info:
        load_settings(cfg)
    assert str(cfg) in info.value.message
    assert fragment in info.value.message


def test_tenant_overrides_inherit(tmp_path: Path) -> None:
    from agentd.policy import gate_policy

    cfg = write(
        tmp_path,
        '[autonomy]\nlevel = "L4"\n[tenants.acme.autonomy]\nkill_switch = true\n'
        "[tenants.acme.budget]\nper_account_daily = 2\n",
    )
    policy = gate_policy(load_settings(cfg))
    acme, other = policy.for_tenant("acme"), policy.for_tenant("other")
    assert acme.autonomy.level == other.autonomy.level == "L4"
    assert acme.autonomy.kill_switch and not other.autonomy.kill_switch
    assert acme.budget.per_account_daily == 2 and acme.budget.per_tenant_daily == 50


def test_the_gate_knows_a_custom_executor_mapped_to_an_action_type(tmp_path: Path) -> None:
    # The gate's executor check (every decision has a way to happen) and the
    # configuration's custom executors meet here: a name mapped under
    # [execution.executors] may be a custom one.
    from agentd.policy import gate_policy

    cfg = write(
        tmp_path,
        '[execution.executors]\n"SEO.meta_update" = "store_seo"\n'
        '[execution.custom_executors.store_seo]\nlike = "product_seo"\nservice = "store"\n',
    )
    policy = gate_policy(load_settings(cfg))
    assert policy.executors["SEO.meta_update"] == "store_seo"
    assert policy.custom_executors == frozenset({"store_seo"})


def test_bad_env_value_is_blamed_on_the_variable_even_when_the_file_sets_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = write(tmp_path, "[autonomy]\nlevel = 'L3'\n")
    monkeypatch.setenv("AGENTD_AUTONOMY__LEVEL", "L9")
    with pytest.raises(ConfigInvalid) as info:
        load_settings(cfg)
    assert "environment variable AGENTD_AUTONOMY__LEVEL: autonomy.level" in info.value.message
    assert str(cfg) not in info.value.message.split("\n", 1)[1]
    assert (
        info.value.details["errors"][0]["source"] == "environment variable AGENTD_AUTONOMY__LEVEL"
    )
    # The file's own bad value is still blamed on the file.
    monkeypatch.delenv("AGENTD_AUTONOMY__LEVEL")
    cfg.write_text("[autonomy]\nlevel = 'L9'\n")
    with pytest.raises(ConfigInvalid) as info:
        load_settings(cfg)
    assert f"{cfg}: autonomy.level" in info.value.message


def test_a_parent_table_variable_is_blamed_only_for_keys_the_file_does_not_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = write(tmp_path, "[autonomy]\nconfidence_floor = 2\n")
    monkeypatch.setenv("AGENTD_AUTONOMY", '{"level": "L9"}')
    with pytest.raises(ConfigInvalid) as info:
        load_settings(cfg)
    sources = {e["key"]: e["source"] for e in info.value.details["errors"]}
    assert sources == {
        "autonomy.level": "environment variable AGENTD_AUTONOMY",
        "autonomy.confidence_floor": str(cfg),
    }
