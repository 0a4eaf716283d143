"""Run ``agentd serve`` as a child process the way systemd does.

The parent binds a datagram socket, passes it as ``NOTIFY_SOCKET``, and waits
for ``READY=1``, so "started" means the store and the control socket are up,
not merely that a process exists. Used by ``agentd demo`` and the end-to-end
tests.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path


class DaemonFailed(Exception):
    """The daemon exited or did not become ready."""


class DaemonProcess:
    """A supervised ``agentd serve`` child."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        config: Path | None = None,
        log_path: Path | None = None,
        detach: bool = False,
        watchdog_usec: int | None = None,
    ) -> None:
        self._dir = tempfile.mkdtemp(prefix="agentd-n-")
        self.notify_path = os.path.join(self._dir, "notify")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.notify_path)
        self._sock.setblocking(False)
        self.messages: list[dict[str, str]] = []
        full_env = {**os.environ, **env, "NOTIFY_SOCKET": self.notify_path}
        if watchdog_usec:
            full_env["WATCHDOG_USEC"] = str(watchdog_usec)
        else:
            full_env.pop("WATCHDOG_USEC", None)
        full_env.pop("WATCHDOG_PID", None)
        cmd = [sys.executable, "-m", "agentd", "serve"]
        if config is not None:
            cmd += ["--config", str(config)]
        self._log = open(log_path, "ab") if log_path else None
        self.proc = subprocess.Popen(
            cmd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=self._log or subprocess.DEVNULL,
            stderr=self._log or subprocess.PIPE,
            start_new_session=detach,
        )

    @property
    def pid(self) -> int:
        """Return the child's pid."""
        return self.proc.pid

    def poll_messages(self) -> list[dict[str, str]]:
        """Collect notify datagrams received so far."""
        while True:
            try:
                data = self._sock.recv(4096)
            except BlockingIOError:
                break
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append(fields)
        return self.messages

    def saw(self, key: str, value: str | None = None) -> bool:
        """Return True once a notify message carried ``key`` (with ``value``)."""
        self.poll_messages()
        return any(key in m and (value is None or m[key] == value) for m in self.messages)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until READY=1.

        :raises DaemonFailed: the child exited first or the timeout passed.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.saw("READY", "1"):
                return
            if self.proc.poll() is not None:
                raise DaemonFailed(
                    f"agentd exited with status {self.proc.returncode} before READY=1: "
                    f"{self.stderr_text()}"
                )
            time.sleep(0.02)
        raise DaemonFailed(f"agentd did not send READY=1 within {timeout:g} s")

    def stderr_text(self) -> str:
        """Return what the child wrote to stderr (when not logging to a file)."""
        if self.proc.stderr is None or self.proc.poll() is None:
            return ""
        return self.proc.stderr.read().decode(errors="replace").strip()

    def stop(self, timeout: float = 10.0) -> int:
        """Send SIGTERM and wait; return the exit status (SIGKILL after the timeout)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.poll_messages()
        return code

    def kill(self) -> None:
        """SIGKILL the child (crash simulation) and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        """Release the notify socket and files (does not stop the child)."""
        self.poll_messages()
        self._sock.close()
        if self._log:
            self._log.close()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        try:
            os.unlink(self.notify_path)
            os.rmdir(self._dir)
        except OSError:
            pass
