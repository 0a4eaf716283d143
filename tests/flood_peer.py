"""A misbehaving control-socket client, run as another user by the tests.

Standard library only: the tests start it with a system Python as uid 65534.

    python flood_peer.py SOCKET hold N SECONDS
        Keep N connections open: half send half a request, half send nothing.
        A connection the daemon answers or closes is opened again at once, so
        the pressure lasts. Prints "ready" once all N are connected, and at
        the end one JSON line: what the daemon answered, by error name.

    python flood_peer.py SOCKET refuse SECONDS
        Send commands this user may not run, one after another, as fast as
        the daemon answers. Prints one JSON line: how many were refused.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

NOBODY = 65534

HALF_REQUEST = b'{"cmd": "sta'


def _connect(path: str, half: bool) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    if half:
        try:
            s.sendall(HALF_REQUEST)
        except OSError:
            pass  # answered (BUSY) and closed before it was sent: the answer is read later
    s.setblocking(False)
    return s


def _answer(s: socket.socket) -> str:
    try:
        data = s.recv(65536)
    except OSError:
        return "reset"
    if not data:
        return "closed"
    try:
        return str(json.loads(data.splitlines()[0])["error"]["name"])
    except (ValueError, KeyError, IndexError, TypeError):
        return "other"


def hold(path: str, n: int, seconds: float) -> dict[str, int]:
    sel = selectors.DefaultSelector()
    for i in range(n):
        half = i % 2 == 0
        sel.register(_connect(path, half), selectors.EVENT_READ, half)
    print("ready", flush=True)
    answers: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        for key, _ in sel.select(timeout=min(left, 0.5)):
            s = key.fileobj
            assert isinstance(s, socket.socket)
            answers[_answer(s)] += 1
            sel.unregister(s)
            s.close()
            try:
                sel.register(_connect(path, key.data), selectors.EVENT_READ, key.data)
            except OSError:
                answers["connect_failed"] += 1
    return dict(answers)


def refuse(path: str, seconds: float) -> dict[str, int]:
    answers: Counter[str] = Counter()
    request = json.dumps({"cmd": "kill_switch.on", "args": {"reason": "flood"}}).encode() + b"\n"
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(path)
        except OSError:
            answers["connect_failed"] += 1
            s.close()
            continue
        try:
            s.sendall(request)
        except OSError:
            pass  # answered and closed before reading it: the answer is still there
        answers[_answer(s)] += 1
        s.close()
    return dict(answers)


def python_for(uid: int) -> str:
    """Return a Python 3.11+ that ``uid`` may execute (ours may live under /root)."""
    for candidate in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        try:
            probe = subprocess.run(
                [candidate, "-c", "import sys; assert sys.version_info >= (3, 11)"],
                capture_output=True,
                timeout=30,
                user=uid,
                group=uid,
                cwd="/",
            )
        except OSError:
            continue
        if probe.returncode == 0:
            return candidate
    raise RuntimeError(f"no Python 3.11 that uid {uid} may run; install Debian's python3")


def spawn(sock: Path, *args: str, uid: int = NOBODY) -> subprocess.Popen[str]:
    """Start this script as ``uid`` against ``sock``; return once it printed "ready"."""
    proc = subprocess.Popen(
        [python_for(uid), os.path.abspath(__file__), str(sock), *args],
        user=uid,
        group=uid,
        stdout=subprocess.PIPE,
        text=True,
        cwd="/",
        env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        proc.wait()
        raise RuntimeError(f"flood peer did not start: {line!r}")
    return proc


def result(proc: subprocess.Popen[str]) -> dict[str, int]:
    """Wait for a peer started by :func:`spawn`; return what the daemon answered it."""
    out, _ = proc.communicate(timeout=120)
    return dict(json.loads(out.strip().splitlines()[-1]))


def main(argv: list[str]) -> int:
    path, mode = argv[0], argv[1]
    if mode == "hold":
        result = hold(path, int(argv[2]), float(argv[3]))
    elif mode == "refuse":
        result = refuse(path, float(argv[2]))
    else:
        print(f"unknown mode {mode}", file=sys.stderr)
        return 2
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
