"""Secrets: the credentials browser operations type, sealed in the vault.

A secret is stored sealed (:class:`~agentd.vault.Vault`), per account,
service and name, and is audited without its value; listing shows names and
metadata, never values. The agent opens them when an operation needs them.
"""

from __future__ import annotations

from typing import Any

from agentd.core.audit import AuditEvent, AuditEventType
from agentd.errors import InvalidArgument, NotFound, VaultError
from agentd.store.base import Store
from agentd.vault import SecretValue, Vault


class SecretsService:
    """Store, list and remove secrets.

    :param vault: seals secrets; ``None`` when no key is configured (storing fails).
    """

    def __init__(self, store: Store, vault: Vault | None) -> None:
        self.store = store
        self.vault = vault

    def _vault(self) -> Vault:
        if self.vault is None:
            raise VaultError(
                "no vault key is configured: set [vault] key_file or the systemd credential"
            )
        return self.vault

    async def set_secret(
        self, account: str, service: str, name: str, value: SecretValue, *, actor: str
    ) -> dict[str, Any]:
        """Seal and store a secret (replacing one of the same name); audited without its value.

        :raises VaultError: no vault key is configured.
        :raises InvalidArgument: an empty name or value.
        """
        if not value.reveal():
            raise InvalidArgument("the secret value is empty", details={"field": "value"})
        vault = self._vault()
        blob = vault.seal(account, service, name, value.reveal())
        async with self.store.write() as tx:
            replaced = await tx.ops.upsert_secret(
                account, service, name, blob, vault.fingerprint, actor
            )
            data = {"service": service, "name": name, "replaced": replaced}
            tx.audit(AuditEvent(AuditEventType.SECRET_SET, actor, account, data))
        return {"account": account, "service": service, "name": name, "replaced": replaced}

    async def list_secrets(self, account: str | None = None) -> list[dict[str, Any]]:
        """Return secret names and metadata, never values."""
        return await self.store.ops.list_secrets(account)

    async def remove_secret(self, account: str, service: str, name: str, *, actor: str) -> None:
        """Delete a secret.

        :raises NotFound: there is no such secret.
        """
        async with self.store.write() as tx:
            if not await tx.ops.delete_secret(account, service, name):
                raise NotFound(f"no secret {account}/{service}/{name}")
            data = {"service": service, "name": name}
            tx.audit(AuditEvent(AuditEventType.SECRET_REMOVED, actor, account, data))
