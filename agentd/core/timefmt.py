"""The stored form of a time, shared by every store and the services that compare with it."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(dt: datetime) -> str:
    """Return the stored form of a time: UTC, ISO 8601, microseconds.

    Stored times of this form sort as text in time order, which the stores'
    range reads rely on.

    :raises ValueError: ``dt`` is naive.
    """
    if dt.tzinfo is None:
        raise ValueError("naive datetime")
    return dt.astimezone(UTC).isoformat(timespec="microseconds")
