"""The vault's crypto: what seals opens, and nothing else does."""

from __future__ import annotations

import pytest

from agentd.errors import InvalidArgument, VaultError
from agentd.vault import (
    BLOB_VERSION,
    NONCE_BYTES,
    SecretValue,
    Vault,
    key_fingerprint,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


@pytest.fixture
def vault() -> Vault:
    return Vault(KEY)


@pytest.mark.parametrize(
    "value",
    ["hunter2", "", "pässwörd ✓ with unicode", "x" * 10_000, "line1\nline2\x00nul"],
)
def test_roundtrip(vault: Vault, value: str) -> None:
    blob = vault.seal("acme", "woocommerce", "admin_password", value)
    assert vault.open("acme", "woocommerce", "admin_password", blob) == value


def test_blob_layout_and_fresh_nonce(vault: Vault) -> None:
    first = vault.seal("acme", "crm", "token", "same value")
    second = vault.seal("acme", "crm", "token", "same value")
    assert first[0] == BLOB_VERSION
    assert len(first) == 1 + NONCE_BYTES + len("same value") + 16
    assert first != second  # a random nonce each time
    assert b"same value" not in first


def test_wrong_key_is_a_clear_error(vault: Vault) -> None:
    blob = vault.seal("acme", "crm", "token", "s3cret")
    with pytest.raises(VaultError) as info:
        Vault(OTHER_KEY).open("acme", "crm", "token", blob)
    assert "could not decrypt secret acme/crm/token: wrong key or tampered data" in str(info.value)
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    ("where", "offset"),
    [
        ("nonce", 1),
        ("nonce end", NONCE_BYTES),
        ("ciphertext", 1 + NONCE_BYTES),
        ("tag", -1),
        ("tag start", -16),
    ],
)
def test_tampered_byte_is_refused(vault: Vault, where: str, offset: int) -> None:
    blob = bytearray(vault.seal("acme", "crm", "token", "s3cret"))
    blob[offset] ^= 0x01
    with pytest.raises(VaultError, match="wrong key or tampered data"):
        vault.open("acme", "crm", "token", bytes(blob))


@pytest.mark.parametrize(
    "moved_to",
    [
        ("other", "crm", "token"),
        ("acme", "cms", "token"),
        ("acme", "crm", "password"),
        # length-prefixed associated data: shifting a separator is a different secret
        ("acme/crm", "token", "x"),
        ("acm", "ecrm", "token"),
    ],
)
def test_blob_moved_to_another_secret_fails(vault: Vault, moved_to: tuple[str, str, str]) -> None:
    blob = vault.seal("acme", "crm", "token", "s3cret")
    with pytest.raises(VaultError, match="wrong key or tampered data"):
        vault.open(*moved_to, blob)


@pytest.mark.parametrize("length", [0, 1, 12, 13, 28])
def test_truncated_blob(vault: Vault, length: int) -> None:
    blob = vault.seal("acme", "crm", "token", "s3cret")[:length]
    with pytest.raises(VaultError, match=r"acme/crm/token: .*too short.*truncated"):
        vault.open("acme", "crm", "token", blob)


def test_truncated_by_one_byte_fails_authentication(vault: Vault) -> None:
    blob = vault.seal("acme", "crm", "token", "s3cret")
    with pytest.raises(VaultError, match="wrong key or tampered data"):
        vault.open("acme", "crm", "token", blob[:-1])


def test_unknown_version(vault: Vault) -> None:
    blob = bytearray(vault.seal("acme", "crm", "token", "s3cret"))
    blob[0] = 7
    with pytest.raises(VaultError, match="unknown blob format version 7"):
        vault.open("acme", "crm", "token", bytes(blob))


@pytest.mark.parametrize(
    ("account", "service", "name"), [("", "s", "n"), ("a", " ", "n"), ("a", "s", "")]
)
def test_empty_names_refused(vault: Vault, account: str, service: str, name: str) -> None:
    with pytest.raises(InvalidArgument):
        vault.seal(account, service, name, "v")


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_vault_needs_a_32_byte_key(length: int) -> None:
    with pytest.raises(VaultError, match=f"32 bytes, got {length}"):
        Vault(b"k" * length)


def test_secret_value_never_prints_itself() -> None:
    secret = SecretValue("hunter2")
    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", f"{secret:>20}", repr([secret])]
    assert all("hunter2" not in text for text in shown)
    assert str(secret) == "***"
    assert repr(secret) == "SecretValue('***')"
    assert secret.reveal() == "hunter2"
    assert secret == SecretValue("hunter2")
    assert secret != SecretValue("hunter3")
    with pytest.raises(TypeError):
        hash(secret)


def test_open_secret_wraps(vault: Vault) -> None:
    blob = vault.seal("acme", "crm", "token", "s3cret")
    secret = vault.open_secret("acme", "crm", "token", blob)
    assert secret.reveal() == "s3cret"
    assert "s3cret" not in repr(secret)


def test_fingerprint_identifies_without_revealing() -> None:
    fingerprint = key_fingerprint(KEY)
    assert fingerprint == key_fingerprint(KEY)
    assert fingerprint != key_fingerprint(OTHER_KEY)
    assert len(fingerprint) == 12
    assert fingerprint not in KEY.hex()
    assert Vault(KEY).fingerprint == fingerprint
    assert KEY.hex() not in repr(Vault(KEY))
