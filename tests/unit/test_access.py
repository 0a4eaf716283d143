"""Who may do what on the control socket."""

from __future__ import annotations

import pytest

from agentd.commands.registry import Access, AccessPolicy, Peer

DAEMON_UID = 990
POLICY = AccessPolicy(daemon_uid=DAEMON_UID, group="agentd", approvers_group="approvers")

ROOT = Peer(1, 0, 0, "root")
DAEMON = Peer(1, DAEMON_UID, DAEMON_UID, "agentd", frozenset({"agentd"}))
READER = Peer(1, 1001, 1001, "rita", frozenset({"rita", "agentd"}))
APPROVER = Peer(1, 1002, 1002, "alan", frozenset({"alan", "approvers"}))
STRANGER = Peer(1, 1003, 1003, "sam", frozenset({"sam"}))


@pytest.mark.parametrize(
    ("peer", "read", "operate", "approve"),
    [
        (ROOT, True, True, True),
        (DAEMON, True, True, False),
        (READER, True, False, False),
        (APPROVER, True, True, True),
        (STRANGER, False, False, False),
    ],
)
def test_roles(peer: Peer, read: bool, operate: bool, approve: bool) -> None:
    assert POLICY.permitted(peer) is read
    assert POLICY.allows(peer, Access.READ) is read
    assert POLICY.allows(peer, Access.OPERATE) is operate
    assert POLICY.allows(peer, Access.APPROVE) is approve


def test_no_groups_configured_means_root_and_self_only() -> None:
    policy = AccessPolicy(daemon_uid=DAEMON_UID)
    assert policy.permitted(ROOT) and policy.permitted(DAEMON)
    assert not policy.permitted(READER) and not policy.permitted(APPROVER)


def test_peer_names_resolve_for_root() -> None:
    peer = Peer.from_ids(1, 0, 0)
    assert peer.user == "root" and "root" in peer.groups


def test_unknown_uid_keeps_its_number() -> None:
    peer = Peer.from_ids(1, 54321, 54321)
    assert peer.user == "54321"
