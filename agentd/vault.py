"""Credential vault: AES-256-GCM sealing of per-account, per-service secrets.

The key comes from a systemd credential (``LoadCredential=agentd-vault-key:…``
puts it under ``$CREDENTIALS_DIRECTORY``) or from a key file that only its
owner may read. This module is pure crypto: storing the sealed blobs is the
store's job.

A sealed blob is ``version (1 byte) || nonce (12 bytes) || ciphertext+tag``.
The associated data binds the blob to its (account, service, name), so a blob
copied onto another secret's row fails to open instead of leaking the wrong
credential into a browser form.
"""

from __future__ import annotations

import argparse
import binascii
import contextlib
import hashlib
import hmac
import os
import secrets
import stat
import sys
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Final

from agentd.atomic import fsync_dir
from agentd.errors import InvalidArgument, VaultError

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
BLOB_VERSION: Final = 1
DEFAULT_CREDENTIAL_NAME: Final = "agentd-vault-key"
_AAD_DOMAIN: Final = b"agentd-vault-secret\x00"
_FINGERPRINT_DOMAIN: Final = b"agentd-vault-key-fingerprint\x00"
_MIN_BLOB = 1 + NONCE_BYTES + TAG_BYTES


class _FromEnvironment(Enum):
    TOKEN = 0


FROM_ENVIRONMENT: Final = _FromEnvironment.TOKEN
"""Default for ``load_key(credentials_dir=…)``: read ``$CREDENTIALS_DIRECTORY`` at call time."""


class SecretValue:
    """Hold a secret so that printing or logging it shows ``***``, never the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the plain value; call this only where the value is really used."""
        return self._value

    def __repr__(self) -> str:
        return "SecretValue('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretValue):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    __hash__ = None  # type: ignore[assignment]  # a hash would leak equality with guesses


def key_fingerprint(key: bytes) -> str:
    """Return a short, non-reversible id of ``key`` so operators can tell keys apart."""
    return hashlib.sha256(_FINGERPRINT_DOMAIN + key).hexdigest()[:12]


def _secret_label(account: str, service: str, name: str) -> str:
    return f"{account}/{service}/{name}"


def _aad(account: str, service: str, name: str) -> bytes:
    # Length-prefixed parts: ("a/b", "c") and ("a", "b/c") must not collide.
    out = bytearray(_AAD_DOMAIN)
    out.append(BLOB_VERSION)
    for part in (account, service, name):
        raw = part.encode("utf-8")
        out += len(raw).to_bytes(4, "big") + raw
    return bytes(out)


def _check_names(account: str, service: str, name: str) -> None:
    for label, value in (("account", account), ("service", service), ("name", name)):
        if not value or not value.strip():
            raise InvalidArgument(f"secret {label} must not be empty", details={"field": label})


class Vault:
    """Seal and open secrets with one AES-256-GCM key.

    :raises VaultError: if ``key`` is not 32 bytes.
    """

    __slots__ = ("_aead", "fingerprint")

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise VaultError(f"vault key must be {KEY_BYTES} bytes, got {len(key)}")
        # Imported here: a daemon without a vault key never needs it.
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(key)
        self.fingerprint = key_fingerprint(key)

    def __repr__(self) -> str:
        return f"Vault(fingerprint={self.fingerprint!r})"

    def seal(self, account: str, service: str, name: str, value: str) -> bytes:
        """Encrypt ``value`` for (account, service, name) and return the blob to store.

        :raises InvalidArgument: if account, service or name is empty.
        """
        _check_names(account, service, name)
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, value.encode("utf-8"), _aad(account, service, name))
        return bytes([BLOB_VERSION]) + nonce + sealed

    def open(self, account: str, service: str, name: str, blob: bytes) -> str:
        """Decrypt a blob sealed for (account, service, name).

        :raises VaultError: on a wrong key, tampered or truncated data, a blob
            sealed for another secret, or an unknown format version.
        :raises InvalidArgument: if account, service or name is empty.
        """
        _check_names(account, service, name)
        label = _secret_label(account, service, name)
        if len(blob) < _MIN_BLOB:
            raise VaultError(
                f"could not decrypt secret {label}: the stored blob is {len(blob)} bytes,"
                f" too short to be a sealed secret (truncated data)",
                details={"secret": label},
            )
        if blob[0] != BLOB_VERSION:
            raise VaultError(
                f"could not decrypt secret {label}: unknown blob format version {blob[0]}"
                f" (this agentd reads version {BLOB_VERSION}); wrong key or tampered data",
                details={"secret": label},
            )
        nonce, sealed = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
        from cryptography.exceptions import InvalidTag

        try:
            plain = self._aead.decrypt(nonce, sealed, _aad(account, service, name))
        except InvalidTag as exc:
            raise VaultError(
                f"could not decrypt secret {label}: wrong key or tampered data"
                f" (vault key fingerprint {self.fingerprint})",
                details={"secret": label, "key_fingerprint": self.fingerprint},
            ) from exc
        return plain.decode("utf-8")

    def open_secret(self, account: str, service: str, name: str, blob: bytes) -> SecretValue:
        """Like :meth:`open`, wrapped in a :class:`SecretValue` that never prints itself."""
        return SecretValue(self.open(account, service, name, blob))


def _decode_key(data: bytes, source: str) -> bytes:
    """Accept 32 raw bytes, 64 hex characters or base64 of 32 bytes."""
    if len(data) == KEY_BYTES:
        return data
    text = data.strip()
    if len(text) == 2 * KEY_BYTES:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    with contextlib.suppress(binascii.Error, ValueError):
        decoded = binascii.a2b_base64(text, strict_mode=True)
        if len(decoded) == KEY_BYTES:
            return decoded
    raise VaultError(
        f"vault key in {source} is not a valid key ({len(data)} bytes read): expected"
        f" {KEY_BYTES} raw bytes, {2 * KEY_BYTES} hex characters or base64 of {KEY_BYTES}"
        f" bytes; create a new one with `agentd vault init-key PATH`",
        details={"path": source},
    )


def _read_key_file(path: Path) -> bytes:
    try:
        # O_NONBLOCK: a FIFO planted at the path must not hang start-up.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError as exc:
        raise VaultError(
            f"vault key file {path} does not exist; create it with"
            f" `agentd vault init-key {path}` (written with mode 0600)",
            details={"path": str(path)},
        ) from exc
    except PermissionError as exc:
        raise VaultError(
            f"vault key file {path} cannot be read by uid {os.geteuid()}: {exc.strerror};"
            f" it must belong to the user running agentd, with mode 0600",
            details={"path": str(path)},
        ) from exc
    except OSError as exc:
        raise VaultError(f"vault key file {path} cannot be opened: {exc.strerror}") from exc
    try:
        # fstat on the open file: what is checked is what is read.
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise VaultError(f"vault key file {path} is not a regular file")
        if info.st_uid != os.geteuid():
            raise VaultError(
                f"vault key file {path} is owned by uid {info.st_uid}, not by the user"
                f" running agentd (uid {os.geteuid()}); fix it with"
                f" `chown {os.geteuid()} {path}` and `chmod 600 {path}`",
                details={"path": str(path), "owner_uid": info.st_uid},
            )
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise VaultError(
                f"vault key file {path} has mode {mode:04o}, so other users may read it;"
                f" refusing to start: run `chmod 600 {path}`",
                details={"path": str(path), "mode": f"{mode:04o}"},
            )
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def load_key(
    *,
    credentials_dir: str | Path | _FromEnvironment | None = FROM_ENVIRONMENT,
    credential_name: str = DEFAULT_CREDENTIAL_NAME,
    key_file: Path | None = None,
) -> bytes:
    """Return the 32-byte vault key from a systemd credential or a key file.

    The credential under ``credentials_dir`` (by default ``$CREDENTIALS_DIRECTORY``)
    wins when it exists; otherwise ``key_file`` is read, and it must be a regular
    file owned by the current user with no group or other permission bits.

    :raises VaultError: naming the problem and its fix (missing, wrong mode or
        owner, wrong length, or no key source configured at all).
    """
    if credentials_dir is FROM_ENVIRONMENT:
        credentials_dir = os.environ.get("CREDENTIALS_DIRECTORY") or None
    if credentials_dir is not None:
        credential = Path(credentials_dir) / credential_name
        try:
            data = credential.read_bytes()
        except FileNotFoundError:
            data = None
        except OSError as exc:
            raise VaultError(f"systemd credential {credential} cannot be read: {exc}") from exc
        if data is not None:
            return _decode_key(data, str(credential))
    if key_file is not None:
        return _decode_key(_read_key_file(Path(key_file)), str(key_file))
    where = (
        f"no credential {credential_name!r} in $CREDENTIALS_DIRECTORY ({credentials_dir})"
        if credentials_dir is not None
        else "$CREDENTIALS_DIRECTORY is not set"
    )
    raise VaultError(
        f"no vault key configured: {where} and no key file is configured; add"
        f" `LoadCredential={credential_name}:/etc/agentd/vault.key` to the unit, or set"
        f" the vault key file in the configuration (create one with"
        f" `agentd vault init-key PATH`)",
    )


def generate_key_file(path: Path) -> None:
    """Create a new random key at ``path`` with mode 0600, never overwriting a file.

    The key is written to a private temporary file first and then hard-linked into
    place, so ``path`` either does not exist or holds a complete key.

    :raises VaultError: if ``path`` exists or cannot be created.
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        raise VaultError(
            f"refusing to overwrite existing file {path}: a vault key cannot be replaced"
            f" without losing every secret sealed with it; choose another path",
            details={"path": str(path)},
        )
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise VaultError(f"cannot create vault key file {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)  # whatever the umask said
            handle.write(secrets.token_bytes(KEY_BYTES).hex().encode("ascii") + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # fails atomically if path appeared meanwhile
        except FileExistsError as exc:
            raise VaultError(f"refusing to overwrite existing file {path}") from exc
        except OSError as exc:
            raise VaultError(f"cannot create vault key file {path}: {exc.strerror}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    fsync_dir(path.parent)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``agentd vault``."""
    parser = argparse.ArgumentParser(
        prog="agentd vault",
        description="Create a vault key file or show a key's fingerprint.",
        epilog="Example: agentd vault init-key /etc/agentd/vault.key",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    text = "Create a new key file with mode 0600 (never over an existing file)."
    init = sub.add_parser(
        "init-key",
        help=text,
        description=text,
        epilog="Example: agentd vault init-key /etc/agentd/vault.key",
    )
    init.add_argument("path", type=Path, metavar="PATH", help="the key file to create")
    text = "Print the fingerprint of the key in use (the systemd credential, else --key-file)."
    show = sub.add_parser(
        "fingerprint",
        help=text,
        description=text,
        epilog="Example: agentd vault fingerprint --key-file /etc/agentd/vault.key",
    )
    show.add_argument("--key-file", type=Path, default=None, metavar="PATH", help="a key file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``agentd vault init-key PATH`` or ``agentd vault fingerprint [--key-file PATH]``."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "init-key":
            generate_key_file(args.path)
            key = load_key(credentials_dir=None, key_file=args.path)
            print(f"created vault key {args.path} (mode 0600, fingerprint {key_fingerprint(key)})")
        else:
            print(key_fingerprint(load_key(key_file=args.key_file)))
    except VaultError as exc:
        print(f"agentd vault: {exc.message}", file=sys.stderr)
        return 1
    return 0
