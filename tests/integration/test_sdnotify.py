"""systemd notifications over a real datagram socket whose listener stops reading."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from agentd.sdnotify import SEND_TIMEOUT_S, SystemdNotifier


def test_a_listener_that_does_not_read_never_stalls_the_daemon(short_tmp: Path) -> None:
    path = short_tmp / "notify"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(path)})
    try:
        sent = []
        for n in range(40):
            started = time.monotonic()
            sent.append(notifier.notify(STATUS=f"status {n}"))
            # Each call returns within the send timeout (plus scheduling slack),
            # whether or not the listener's queue had room.
            assert time.monotonic() - started < SEND_TIMEOUT_S + 1.0
        assert sent[0] is True
        assert False in sent  # the queue filled: later messages were dropped, not waited on
        listener.setblocking(False)
        received = []
        while True:
            try:
                received.append(listener.recv(4096).decode())
            except BlockingIOError:
                break
        assert received[0] == "STATUS=status 0"
        assert len(received) == sent.count(True)
    finally:
        notifier.close()
        listener.close()
