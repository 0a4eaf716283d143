"""What the daemon checks about its store at start: the file's integrity (a large one
after READY, while it serves) and that the vault key is the one the secrets were
sealed with."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from agentd import daemon as daemon_module
from agentd.config import Settings, load_settings
from agentd.daemon import run_daemon
from agentd.errors import AgentdError, ErrorCode, VaultError
from agentd.vault import generate_key_file, key_fingerprint, load_key
from tests.e2e.test_daemon_hardening import _damage
from tests.helpers import ask, serving

ACCOUNT_ROWS = 3000


def settings_for(short_tmp: Path, monkeypatch: pytest.MonkeyPatch, key: Path | None) -> Settings:
    cfg = short_tmp / "agentd.toml"
    cfg.write_text(
        "[scheduler]\nenabled = false\n" + (f'[vault]\nkey_file = "{key}"\n' if key else "")
    )
    monkeypatch.setenv("AGENTD_CONFIG", str(cfg))
    monkeypatch.setenv("AGENTD_STATE_DIR", str(short_tmp / "state"))
    monkeypatch.setenv("AGENTD_SOCKET_PATH", str(short_tmp / "s.sock"))
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    return load_settings(None)


def accounts_csv(n: int) -> bytes:
    rows = [f"acct{i:05d},t1,Account {i} with a longer name,discovery,ACTIVE" for i in range(n)]
    return ("id,tenant,name,stage,trusted_mode\n" + "\n".join(rows) + "\n").encode()


async def test_a_large_store_is_checked_after_ready_and_refuses_writes_when_damaged(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(short_tmp, monkeypatch, None)
    sock = settings.resolved_socket_path
    async with serving(settings) as app:
        await ask(sock, "accounts.import", {"name": "a.csv"}, upload=accounts_csv(ACCOUNT_ROWS))
        assert app.integrity["state"] == "ok"  # checked before it opened
    _damage(settings.database_path, "accounts")
    # As if the file were larger than what is checked before start-up.
    monkeypatch.setattr(daemon_module, "QUICK_CHECK_INLINE_BYTES", 0)
    async with serving(settings) as app:
        with anyio.fail_after(30):
            while (status := await ask(sock, "status"))["store"]["integrity"]["state"] in (
                "pending",
                "running",
            ):
                await anyio.sleep(0.05)
        integrity = status["store"]["integrity"]
        assert integrity["state"] == "corrupt" and integrity["problems"], integrity
        assert status["store"]["writes_refused"] is True
        assert any("database is damaged, writes are refused" in p for p in status["problems"])
        assert status["state"] == "running"  # it still answers: reads, status
        # The operations runner's next claim is a write the store refuses: it
        # must wait for the store, not bring the daemon down.
        app.operations._wake.set()
        await anyio.sleep(0.5)
        assert (await ask(sock, "status"))["state"] == "running"
        assert (await ask(sock, "intents.list", {})) == {"intents": []}
        with pytest.raises(AgentdError) as refused:
            await ask(sock, "accounts.import", {"name": "b.csv"}, upload=accounts_csv(1))
        assert refused.value.code is ErrorCode.STORE_ERROR
        assert "writes are refused" in refused.value.message
        assert "restore a backup" in refused.value.message
        folder = settings.notify.resolved_folder(settings.state_dir)
        # The damage is in the status before its notification is written.
        with anyio.move_on_after(10):
            while not any(folder.glob("*.json")):
                await anyio.sleep(0.05)
        notes = [json.loads(p.read_text()) for p in folder.glob("*.json")]
        assert [n["kind"] for n in notes] == ["store"], notes
        assert notes[0]["severity"] == "critical" and "damaged" in notes[0]["title"]


async def test_the_wrong_vault_key_is_refused_at_start_naming_both_keys(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = short_tmp / "first.key", short_tmp / "second.key"
    generate_key_file(first)
    generate_key_file(second)
    fp_first = key_fingerprint(load_key(credentials_dir=None, key_file=first))
    fp_second = key_fingerprint(load_key(credentials_dir=None, key_file=second))
    settings = settings_for(short_tmp, monkeypatch, first)
    sock = settings.resolved_socket_path
    async with serving(settings) as app:
        await ask(sock, "accounts.import", {"name": "a.csv"}, upload=accounts_csv(1))
        for name in ("admin_user", "admin_password"):
            await ask(
                sock,
                "secret.set",
                {"account": "acct00000", "service": "backoffice", "name": name},
                upload=b"value",
            )

    wrong = settings_for(short_tmp, monkeypatch, second)
    with pytest.raises(VaultError) as refused:
        await run_daemon(wrong)
    message = refused.value.message
    assert f"key file {second} has fingerprint {fp_second}" in message, message
    assert f"sealed with key fingerprint {fp_first} (2 secrets)" in message, message
    assert not sock.exists()

    # The right key: it starts, and nothing is wrong.
    async with serving(settings_for(short_tmp, monkeypatch, first)) as app:
        status = await ask(sock, "status")
        assert status["problems"] == []
        # Some secrets under another key (as left by a key change): said, not fatal.
        async with app.store.write() as tx:
            await tx.execute(
                "UPDATE secrets SET key_fingerprint = ? WHERE name = 'admin_user'", (fp_second,)
            )
    async with serving(settings_for(short_tmp, monkeypatch, first)) as app:
        status = await ask(sock, "status")
        assert any(
            f"1 of 2 stored secrets were sealed with another vault key ({fp_second}" in p
            for p in status["problems"]
        ), status["problems"]
