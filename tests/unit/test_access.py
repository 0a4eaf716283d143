"""Who may do what on the control socket."""

from __future__ import annotations

import pytest

from agentd.commands.registry import Access, AccessPolicy, Peer
from agentd.core.bursts import BurstTally
from agentd.server import ConnectionSlots

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


# -- connection slots: a share per uid, a reserve for root and approvers --------------------------


def test_a_uid_holds_at_most_its_share() -> None:
    slots = ConnectionSlots(total=10, per_uid=3, reserved=2)
    assert [slots.take(1001, False) for _ in range(3)] == [None, None, None]
    why = slots.take(1001, False)
    assert why is not None and "max_connections_per_uid" in why
    assert slots.over_share(1001) == why
    assert slots.take(1002, False) is None  # another user is not affected
    slots.give_back(1001)
    assert slots.over_share(1001) is None and slots.take(1001, False) is None


def test_root_is_not_counted_per_uid_and_uses_the_reserve() -> None:
    slots = ConnectionSlots(total=6, per_uid=1, reserved=2)
    for uid in (1001, 1002, 1003, 1004):  # readers fill what is not reserved
        assert slots.take(uid, False) is None
    why = slots.take(1005, False)
    assert why is not None and "kept for approvers" in why
    assert slots.take(0, True) is None and slots.take(0, True) is None  # root: the reserve
    assert slots.take(0, True) is not None  # and no further than the total
    assert slots.in_use == 6


def test_approvers_use_the_reserve_within_their_share() -> None:
    slots = ConnectionSlots(total=4, per_uid=2, reserved=2)
    assert slots.take(1001, False) is None and slots.take(1002, False) is None
    assert slots.take(1003, False) is not None
    assert slots.take(2001, True) is None and slots.take(2001, True) is None
    assert slots.take(2002, True) is not None  # full
    slots.give_back(2001)
    assert slots.held_by(2001) == 1 and slots.take(2002, True) is None


# -- refusal bursts: the first at once, the rest as one count per interval -----------------------


def test_first_refusal_is_reported_the_rest_counted() -> None:
    tally = BurstTally(interval_s=60)
    assert tally.note(1001, "rita", "run 'propose'", now=0.0) is True
    assert [tally.note(1001, "rita", "run 'propose'", now=t) for t in (1.0, 2.0, 3.0)] == [
        False,
        False,
        False,
    ]
    assert tally.note(1002, "sam", "use the control socket", now=3.0) is True  # per uid
    assert tally.due(now=59.0) == []
    [burst] = tally.due(now=60.0)
    assert (burst.key, burst.label, burst.count, burst.what) == (
        1001,
        "rita",
        3,
        {"run 'propose'": 3},
    )
    assert tally.pending() == 0


def test_a_lasting_flood_gives_one_burst_per_interval_and_quiet_resets() -> None:
    tally = BurstTally(interval_s=10)
    reported, bursts = [], []
    for t in range(35):  # one refusal a second for 35 s, the reporter looking in between
        if tally.note(7, "u", "x", now=float(t)):
            reported.append(t)
        bursts += tally.due(now=t + 0.5)
    assert reported == [0]  # only the very first on its own
    # Seconds 1..10 reported at 10.5, 11..20 at 20.5, 21..30 at 30.5.
    assert [b.count for b in bursts] == [10, 10, 10]
    assert tally.drain(now=35.0)[0].count == 4  # 31..34, written at shutdown
    assert tally.note(7, "u", "x", now=100.0) is True  # quiet again: reported at once


def test_quiet_key_is_forgotten_after_its_interval() -> None:
    tally = BurstTally(interval_s=10)
    assert tally.note(7, "u", "x", now=0.0)
    assert tally.due(now=11.0) == []  # nothing more came: no burst
    assert tally.note(7, "u", "x", now=12.0) is True


def test_kinds_of_refusal_are_bounded() -> None:
    tally = BurstTally(interval_s=10, max_kinds=2)
    tally.note(7, "u", "first", now=0.0)
    for i in range(5):
        tally.note(7, "u", f"kind {i}", now=1.0)
    [burst] = tally.drain(now=2.0)
    assert burst.count == 5 and burst.what == {"kind 0": 1, "kind 1": 1, "other": 3}
