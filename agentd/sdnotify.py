"""systemd's notify protocol (``sd_notify``), without libsystemd.

When ``NOTIFY_SOCKET`` is unset (not run by systemd, or ``Type=simple``)
every call is a no-op, so the daemon code never has to ask.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

# How long one notification may wait for room in the listener's queue.
SEND_TIMEOUT_S = 0.1


class SystemdNotifier:
    """Send state changes to the service manager."""

    def __init__(self, env: Mapping[str, str] = os.environ) -> None:
        address = env.get("NOTIFY_SOCKET", "")
        # An address starting with '@' lives in the abstract namespace.
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._sock: socket.socket | None = None
        self.watchdog_usec = 0
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if usec.isdigit() and (not pid or pid == str(os.getpid())):
            self.watchdog_usec = int(usec)

    @property
    def enabled(self) -> bool:
        """Return True when a service manager listens."""
        return bool(self._address)

    @property
    def watchdog_interval(self) -> float | None:
        """Return the ping interval (half the watchdog timeout), or None when off."""
        if not self.watchdog_usec:
            return None
        return self.watchdog_usec / 2_000_000

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines, e.g. ``notify(READY=1, STATUS="serving")``.

        Returns False when nothing was sent; a vanished service manager is not
        an error the daemon can do anything about. The send never blocks the
        event loop for long: a listener that does not read fills its queue
        (``net.unix.max_dgram_qlen``, 10 datagrams by default), and a message
        that cannot be queued within :data:`SEND_TIMEOUT_S` is dropped.
        """
        if not self._address:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.settimeout(SEND_TIMEOUT_S)
            self._sock.sendto(message, self._address)
        except OSError:
            return False
        return True

    def close(self) -> None:
        """Release the datagram socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
