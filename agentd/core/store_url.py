"""The store's URL: which database engine it names, checked, and shown without its password.

An empty URL means the embedded SQLite file in the state folder; a
``postgresql://`` (or ``postgres://``) URL names a PostgreSQL database in
libpq's URI form. A password may be in the URL (``user:secret@``) or in its
query (``?password=secret``); :func:`redact_url` hides both wherever the URL
is shown (logs, status, errors).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

#: The URL schemes that name PostgreSQL (libpq accepts both).
POSTGRES_SCHEMES = ("postgresql", "postgres")

_USER_PASSWORD = re.compile(r"(://[^:/@?#]*):[^@/?#]*@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``."""
    return _QUERY_PASSWORD.sub(r"\1***", _USER_PASSWORD.sub(r"\1:***@", url))


def check_store_url(url: str) -> str:
    """Return ``url`` stripped if it is empty or a usable PostgreSQL URL.

    :raises ValueError: another scheme, or a URL that does not parse (the
        message shows the URL without its password).
    """
    url = url.strip()
    if not url:
        return ""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError as exc:
        raise ValueError(f"{shown!r} is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in POSTGRES_SCHEMES:
        raise ValueError(
            f"{shown!r}: the store URL must start with postgresql:// "
            "(leave it empty for SQLite in the state folder)"
        )
    return url
