"""The audit hash chain, on plain rows."""

from __future__ import annotations

import pytest

from agentd.core.audit import GENESIS, canonical_data, record_hash, verify_chain


def chain(n: int) -> list[tuple[int, str, str, str, str | None, str, str, str]]:
    rows = []
    prev = GENESIS
    for seq in range(1, n + 1):
        data = canonical_data({"n": seq})
        digest = record_hash(prev, seq, "2026-01-01T00:00:00+00:00", "E", "a", None, data)
        rows.append((seq, "2026-01-01T00:00:00+00:00", "E", "a", None, data, prev, digest))
        prev = digest
    return rows


def test_intact_chain() -> None:
    verdict = verify_chain(chain(5), head_seq=5, head_hash=chain(5)[-1][7])
    assert verdict.intact and verdict.count == 5


def test_empty_chain_is_intact() -> None:
    assert verify_chain([]).intact


@pytest.mark.parametrize("field", [1, 2, 3, 4, 5])
def test_altered_field_is_found(field: int) -> None:
    rows = chain(5)
    row = list(rows[2])
    row[field] = "tampered" if field != 4 else "subject"
    rows[2] = tuple(row)  # type: ignore[assignment]
    verdict = verify_chain(rows)
    assert not verdict.intact and verdict.first_broken_seq == 3


def test_removed_record_is_found() -> None:
    rows = chain(5)
    del rows[1]
    verdict = verify_chain(rows)
    assert not verdict.intact and verdict.first_broken_seq == 2
    assert "missing" in (verdict.problem or "")


def test_rehashed_record_breaks_the_next_link() -> None:
    rows = chain(4)
    seq, at, ev, actor, subj, _, prev, _ = rows[1]
    data = canonical_data({"n": "forged"})
    rows[1] = (
        seq,
        at,
        ev,
        actor,
        subj,
        data,
        prev,
        record_hash(prev, seq, at, ev, actor, subj, data),
    )
    verdict = verify_chain(rows)
    assert not verdict.intact and verdict.first_broken_seq == 3


def test_truncated_tail_is_found_with_head() -> None:
    rows = chain(5)
    verdict = verify_chain(rows[:3], head_seq=5, head_hash=rows[-1][7])
    assert not verdict.intact and verdict.first_broken_seq == 4


def test_canonical_data_is_order_independent() -> None:
    assert canonical_data({"b": 1, "a": [1, {"d": 2, "c": 3}]}) == canonical_data(
        {"a": [1, {"c": 3, "d": 2}], "b": 1}
    )


def test_record_hash_and_data_text_are_pinned() -> None:
    # Stored trails are verified across releases: these values may never change.
    data = canonical_data({"b": "é", "a": 1, "n": None})
    assert data == '{"a":1,"b":"é","n":null}'
    at = "2026-01-01T00:00:00.000000+00:00"
    assert (
        record_hash(GENESIS, 7, at, "PROPOSAL_CREATED", "alice", None, data)
        == "5c7cbab7e257521404c2defb5ba685a73091c99c72b924c99fff13839e4aeb47"
    )
    assert (
        record_hash("ab" * 32, 12, at, "PROPOSAL_AUTO_APPROVED", "agentd", "int_0123", "{}")
        == "66bcb88921909f64e207d173f9562c21eb24b27c7e571541b5c33eefdfee4e0b"
    )


def test_chain_holding_the_writers_head_is_intact() -> None:
    rows = chain(5)
    assert verify_chain(rows, written=(5, rows[-1][7])).intact
    # Records appended after the head was taken are fine.
    assert verify_chain(rows, written=(3, rows[2][7])).intact
    # A writer that has written nothing expects nothing.
    assert verify_chain([], written=(0, GENESIS)).intact


def test_truncated_then_rehashed_tail_is_found_with_the_writers_head() -> None:
    """Cut records 4 and 5 off and fix the database's own head: only the writer can tell."""
    written = chain(5)
    rows = written[:3]
    assert verify_chain(rows, head_seq=3, head_hash=rows[-1][7]).intact  # what it fooled
    verdict = verify_chain(rows, head_seq=3, head_hash=rows[-1][7], written=(5, written[-1][7]))
    assert not verdict.intact and verdict.first_broken_seq == 4
    assert "running daemon wrote records up to 5" in (verdict.problem or "")
    assert "database ends at record 3" in (verdict.problem or "")


def test_rewritten_head_record_is_found_with_the_writers_head() -> None:
    rows = chain(5)
    real = rows[-1][7]
    seq, at, ev, _, subj, data, prev, _ = rows[-1]
    forged = record_hash(prev, seq, at, ev, "mallory", subj, data)
    rows[-1] = (seq, at, ev, "mallory", subj, data, prev, forged)
    assert verify_chain(rows, head_seq=5, head_hash=forged).intact  # consistent on its own
    verdict = verify_chain(rows, head_seq=5, head_hash=forged, written=(5, real))
    assert not verdict.intact and verdict.first_broken_seq == 5
    assert "not the one the running daemon wrote" in (verdict.problem or "")
