"""Loading the vault key from real files: systemd credentials and key files."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from agentd.errors import VaultError
from agentd.vault import (
    DEFAULT_CREDENTIAL_NAME,
    Vault,
    generate_key_file,
    key_fingerprint,
    load_key,
    main,
)

KEY = bytes(range(100, 132))


def write_key(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    ("form", "data"),
    [
        ("raw", KEY),
        ("hex", KEY.hex().encode()),
        ("hex with newline", KEY.hex().encode() + b"\n"),
        ("upper hex with CRLF", KEY.hex().upper().encode() + b"\r\n"),
        ("base64", base64.b64encode(KEY)),
        ("base64 with newline", base64.b64encode(KEY) + b"\n"),
    ],
)
def test_key_file_forms(tmp_path: Path, form: str, data: bytes) -> None:
    path = write_key(tmp_path / "vault.key", data)
    assert load_key(credentials_dir=None, key_file=path) == KEY, form


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o601])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = write_key(tmp_path / "vault.key", KEY.hex().encode(), mode)
    with pytest.raises(VaultError) as info:
        load_key(credentials_dir=None, key_file=path)
    message = str(info.value)
    assert str(path) in message
    assert f"chmod 600 {path}" in message
    assert f"{mode:04o}" in message


def test_key_file_mode_0400_is_fine(tmp_path: Path) -> None:
    path = write_key(tmp_path / "vault.key", KEY.hex().encode(), 0o400)
    assert load_key(credentials_dir=None, key_file=path) == KEY


def test_missing_key_file_says_how_to_create_it(tmp_path: Path) -> None:
    path = tmp_path / "nope.key"
    with pytest.raises(VaultError) as info:
        load_key(credentials_dir=None, key_file=path)
    assert f"{path} does not exist" in str(info.value)
    assert f"agentd vault init-key {path}" in str(info.value)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"short",
        KEY[:31],
        KEY + b"!",
        KEY.hex()[:-2].encode(),
        b"z" * 64,
        b"not base64 at all!!",
    ],
)
def test_wrong_length_or_garbage_key(tmp_path: Path, data: bytes) -> None:
    path = write_key(tmp_path / "vault.key", data)
    with pytest.raises(VaultError) as info:
        load_key(credentials_dir=None, key_file=path)
    assert "not a valid key" in str(info.value)
    assert "agentd vault init-key" in str(info.value)


def test_directory_is_not_a_key_file(tmp_path: Path) -> None:
    folder = tmp_path / "dir"
    folder.mkdir(mode=0o700)
    with pytest.raises(VaultError, match="not a regular file"):
        load_key(credentials_dir=None, key_file=folder)


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_key_file_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    path = write_key(tmp_path / "vault.key", KEY.hex().encode())
    os.chown(path, 12345, -1)
    with pytest.raises(VaultError, match=r"owned by uid 12345, not by the user running agentd"):
        load_key(credentials_dir=None, key_file=path)


def test_credentials_directory_wins_over_key_file(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / DEFAULT_CREDENTIAL_NAME).write_bytes(KEY.hex().encode())
    other = bytes(32)
    key_file = write_key(tmp_path / "vault.key", other.hex().encode())
    assert load_key(credentials_dir=str(creds), key_file=key_file) == KEY


def test_credentials_directory_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "custom-name").write_bytes(base64.b64encode(KEY))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert load_key(credential_name="custom-name") == KEY


def test_credentials_directory_without_the_credential_falls_back_to_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "empty"))
    key_file = write_key(tmp_path / "vault.key", KEY)
    assert load_key(key_file=key_file) == KEY


def test_bad_credential_is_named(tmp_path: Path) -> None:
    (tmp_path / DEFAULT_CREDENTIAL_NAME).write_bytes(b"too short")
    with pytest.raises(VaultError, match=f"{tmp_path / DEFAULT_CREDENTIAL_NAME}"):
        load_key(credentials_dir=tmp_path)


def test_no_key_source_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(VaultError) as info:
        load_key()
    assert "no vault key configured" in str(info.value)
    assert "LoadCredential=agentd-vault-key:" in str(info.value)


def test_generate_key_file_creates_a_0600_key(tmp_path: Path) -> None:
    path = tmp_path / "vault.key"
    old_umask = os.umask(0o000)  # a lax umask must not loosen the key's mode
    try:
        generate_key_file(path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = load_key(credentials_dir=None, key_file=path)
    assert len(key) == 32
    blob = Vault(key).seal("a", "s", "n", "v")
    assert Vault(load_key(credentials_dir=None, key_file=path)).open("a", "s", "n", blob) == "v"
    assert [p.name for p in tmp_path.iterdir()] == ["vault.key"]  # no temp file left


def test_generated_keys_differ(tmp_path: Path) -> None:
    generate_key_file(tmp_path / "a.key")
    generate_key_file(tmp_path / "b.key")
    assert (tmp_path / "a.key").read_bytes() != (tmp_path / "b.key").read_bytes()


def test_generate_key_file_refuses_to_overwrite(tmp_path: Path) -> None:
    path = write_key(tmp_path / "vault.key", KEY.hex().encode())
    with pytest.raises(VaultError, match="refusing to overwrite"):
        generate_key_file(path)
    assert load_key(credentials_dir=None, key_file=path) == KEY


def test_generate_key_file_refuses_a_dangling_symlink(tmp_path: Path) -> None:
    link = tmp_path / "vault.key"
    link.symlink_to(tmp_path / "target")
    with pytest.raises(VaultError, match="refusing to overwrite"):
        generate_key_file(link)
    assert not (tmp_path / "target").exists()


def test_generate_key_file_in_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(VaultError, match="cannot create vault key file"):
        generate_key_file(tmp_path / "missing" / "vault.key")


def test_cli_init_key_and_fingerprint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "vault.key"
    assert main(["init-key", str(path)]) == 0
    key = load_key(credentials_dir=None, key_file=path)
    out = capsys.readouterr().out
    assert key_fingerprint(key) in out
    assert key.hex() not in out
    assert main(["fingerprint", "--key-file", str(path)]) == 0
    assert capsys.readouterr().out.strip() == key_fingerprint(key)


def test_cli_init_key_refuses_existing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_key(tmp_path / "vault.key", KEY.hex().encode())
    assert main(["init-key", str(path)]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert path.read_bytes() == KEY.hex().encode()
