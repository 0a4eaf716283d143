"""The control socket: a Unix stream server, one request per connection.

Per connection: check the peer's credentials (SO_PEERCRED) before anything
else, take a connection slot or answer BUSY at once, read one request line
(its first byte within the first-byte timeout, all of it within the read
timeout and the size limit), dispatch it, write the response (and any
streamed events before it), close. Misbehaving clients get an error or a
timeout; nothing they do reaches the other connections.

Slots: at most ``max_connections`` at once, at most ``max_connections_per_uid``
for one user (root is not counted per user), and the last
``reserved_connections`` only for root and the approvers group, so a user
who floods the socket holds a few slots and an operator still gets in.
Nothing queues: a caller without a slot is told BUSY before its request is
read, so a command it was told failed can never run later.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import stat
import struct
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
from anyio.abc import SocketAttribute, SocketListener, SocketStream, UNIXSocketStream
from loguru import logger

from agentd import protocol
from agentd.commands.registry import Dispatcher, Peer
from agentd.core.bursts import Burst, BurstTally
from agentd.errors import (
    AgentdError,
    BadRequest,
    Busy,
    ConfigInvalid,
    MessageTooLarge,
    RequestTimeout,
    ShuttingDown,
)

_UCRED = struct.Struct("3i")


class SocketInUse(AgentdError):
    """Another daemon is already serving on the socket path."""


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """Return ``(pid, uid, gid)`` of the process connected to ``sock``."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return pid, uid, gid


def prepare_socket_path(path: Path) -> None:
    """Make ``path`` free to bind: remove a stale socket, refuse a live one.

    :raises SocketInUse: a daemon answers on it.
    :raises ConfigInvalid: something that is not a socket sits there.
    """
    try:
        st = path.lstat()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ConfigInvalid(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(os.fspath(path))
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            logger.info("removing stale socket {} left by a daemon that did not stop cleanly", path)
            path.unlink(missing_ok=True)
            return
        raise SocketInUse(f"cannot check socket {path}: {exc.strerror}") from exc
    else:
        raise SocketInUse(
            f"another agentd is already serving on {path}; stop it first "
            "(or point socket_path elsewhere)"
        )
    finally:
        probe.close()


# Connections taken from the queue in one go, at most, before the requests in
# flight get their turn: a batch of a flood costs the loop about 10 ms.
ACCEPT_BATCH = 64


def _accept_queued(listener: socket.socket) -> list[socket.socket]:
    """Return the connections already waiting on the (non-blocking) listening socket."""
    out: list[socket.socket] = []
    while len(out) < ACCEPT_BATCH:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            break
        except OSError as exc:  # e.g. EMFILE, or the listener closed: the loop copes
            if exc.errno not in (errno.EBADF, errno.EINVAL):
                logger.error("accept failed: {}", exc)
            break
        conn.setblocking(False)
        out.append(conn)
    return out


def hung_up(sock: socket.socket) -> bool:
    """Return True when the peer has closed its end entirely (not just its writing side)."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLHUP)
    return any(events & select.POLLHUP for _, events in poller.poll(0))


class ConnectionSlots:
    """Count connections in use: a total, a share per uid, and a reserve.

    :param total: connections served at once.
    :param per_uid: connections one uid may hold (root, uid 0, is not limited).
    :param reserved: of ``total``, slots only privileged peers may take.
    """

    def __init__(self, total: int, per_uid: int, reserved: int) -> None:
        self.total = total
        self.per_uid = per_uid
        self.reserved = min(reserved, total - 1)
        self.in_use = 0
        self._by_uid: Counter[int] = Counter()

    def over_share(self, uid: int) -> str | None:
        """Return why ``uid`` may take no more slots (it holds its share), or None."""
        if uid != 0 and self._by_uid.get(uid, 0) >= self.per_uid:
            return (
                f"uid {uid} already holds {self.per_uid} connections "
                "(control.max_connections_per_uid)"
            )
        return None

    def take(self, uid: int, privileged: bool) -> str | None:
        """Take a slot for ``uid``; return None, or why there is none."""
        why = self.over_share(uid)
        if why is not None:
            return why
        limit = self.total if privileged else self.total - self.reserved
        if self.in_use >= limit:
            kept = "" if privileged else f", {self.reserved} of them kept for approvers"
            return f"all {self.total} connections are in use (control.max_connections{kept})"
        self.in_use += 1
        self._by_uid[uid] += 1
        return None

    def give_back(self, uid: int) -> None:
        """Return a slot taken by ``uid``."""
        self.in_use -= 1
        self._by_uid[uid] -= 1
        if self._by_uid[uid] <= 0:
            del self._by_uid[uid]

    def held_by(self, uid: int) -> int:
        """Return how many slots ``uid`` holds."""
        return self._by_uid.get(uid, 0)


class ControlServer:
    """Serve the control protocol on a Unix socket."""

    def __init__(
        self,
        path: Path,
        dispatcher: Dispatcher,
        *,
        mode: int = 0o660,
        group: str | None = None,
        max_message_bytes: int = protocol.DEFAULT_MAX_MESSAGE_BYTES,
        read_timeout_s: float = 10.0,
        first_byte_timeout_s: float = 2.0,
        max_connections: int = 256,
        max_connections_per_uid: int = 16,
        reserved_connections: int = 16,
        max_upload_bytes: int = 256 * 1_048_576,
    ) -> None:
        self.path = path
        self.dispatcher = dispatcher
        self.mode = mode
        self.group = group
        self.max_message_bytes = max_message_bytes
        self.read_timeout_s = read_timeout_s
        self.first_byte_timeout_s = min(first_byte_timeout_s, read_timeout_s)
        self.max_upload_bytes = max_upload_bytes
        self.slots = ConnectionSlots(max_connections, max_connections_per_uid, reserved_connections)
        # Turned-away connections are logged like refusals: the first of a
        # user at once, the rest as one line per interval with a count.
        self._busy = BurstTally(dispatcher.refusals.interval_s)
        self._names: dict[int, str] = {}  # user names of uids that held slots, for logs
        self._busy_answers: dict[str, bytes] = {}
        self._listener: SocketListener | None = None
        self._accepting = False
        self._in_flight = 0
        self._idle = anyio.Event()
        self._idle.set()

    async def bind(self) -> None:
        """Create the socket file with a restrictive mode.

        :raises SocketInUse: another daemon serves on the path.
        """
        prepare_socket_path(self.path)
        # The umask closes the window between bind() and chmod() in which the
        # socket would otherwise be reachable with the default mode.
        old = os.umask(0o177)
        try:
            self._listener = await anyio.create_unix_listener(self.path)
        finally:
            os.umask(old)
        os.chmod(self.path, self.mode)
        if self.group:
            import grp

            try:
                gid = grp.getgrnam(self.group).gr_gid
                os.chown(self.path, -1, gid)
            except (KeyError, PermissionError) as exc:
                logger.warning("cannot give socket to group {}: {}", self.group, exc)
        self._accepting = True

    async def serve(self) -> None:
        """Accept connections until :meth:`stop_intake` is called."""
        listener = self._listener
        assert listener is not None, "bind() first"
        reporter = anyio.CancelScope()

        async def report() -> None:
            with reporter:
                await self._report_bursts()

        waiting = listener.extra(SocketAttribute.raw_socket)
        async with anyio.create_task_group() as tg:
            tg.start_soon(report)
            while self._accepting:
                try:
                    first = await listener.accept()
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    break
                except OSError as exc:  # e.g. EMFILE: back off instead of spinning
                    logger.error("accept failed: {}", exc)
                    await anyio.sleep(0.1)
                    continue
                # Take every connection already queued behind it without
                # yielding: a flood is answered in one go, and a connection of
                # root's queued behind it is reached at once.
                batch: list[SocketStream | socket.socket] = [first, *_accept_queued(waiting)]
                for conn in batch:
                    raw = (
                        conn
                        if isinstance(conn, socket.socket)
                        else conn.extra(SocketAttribute.raw_socket)
                    )
                    try:
                        admitted = self._screen(raw)
                    except OSError as exc:  # the peer's credentials could not be read
                        logger.warning("dropped a control connection: {}", exc)
                        admitted = None
                    if admitted is not None:
                        tg.start_soon(self._serve_one, conn, *admitted)
                    elif isinstance(conn, socket.socket):
                        conn.close()  # answered already, or unusable; never read
                    else:
                        await conn.aclose()
            reporter.cancel()  # the connections in flight finish; stop_intake reports the rest

    async def _report_bursts(self) -> None:
        """Write counted refusals and turned-away connections when their interval ends."""
        every = min(1.0, self.dispatcher.refusals.interval_s / 4)
        while True:
            await anyio.sleep(every)
            await self.dispatcher.flush_refusals()
            self._log_busy(self._busy.due(time.monotonic()))

    @staticmethod
    def _log_busy(bursts: list[Burst]) -> None:
        for burst in bursts:
            logger.warning(
                "turned away {} more connections of {} (uid {}) in the last {:.0f} s: busy",
                burst.count,
                burst.label,
                burst.key,
                burst.seconds,
            )

    async def stop_intake(self) -> None:
        """Stop accepting new connections, remove the socket file, write counted refusals.

        Called again after the requests in flight are done, it writes the
        refusals they added: none counted is lost at shutdown.
        """
        self._accepting = False
        listener, self._listener = self._listener, None
        if listener is not None:  # else never bound, or already stopped: the file is not ours
            await listener.aclose()
            self.path.unlink(missing_ok=True)
        await self.dispatcher.flush_refusals(everything=True)
        self._log_busy(self._busy.drain(time.monotonic()))

    async def drain(self, grace_s: float) -> bool:
        """Wait for requests in flight; return False if some were still running."""
        with anyio.move_on_after(grace_s):
            await self._idle.wait()
            return True
        return self._in_flight == 0

    def _screen(self, raw: socket.socket) -> tuple[Peer, bool] | None:
        """Admit a connection as it is accepted, before anything is read from it.

        Returns None when it was answered BUSY here, else the peer and
        whether it holds a slot (False: it may not use the socket at all).
        Done in the accept loop, without a task or a wait, so a flood is
        turned away about as fast as it connects and a connection of root's
        behind it in the queue is reached soon.
        """
        pid, uid, gid = peer_credentials(raw)
        why = self.slots.over_share(uid)
        if why is not None:
            # Only a permitted peer holds slots, so this one passed the
            # peer check on an earlier connection: no need to look it up again.
            self._turn_away(raw, uid, pid, self._names.get(uid, str(uid)), why)
            return None
        peer = Peer.from_ids(pid, uid, gid)
        policy = self.dispatcher.policy
        if not policy.permitted(peer):
            return peer, False
        why = self.slots.take(uid, policy.is_approver(peer))
        if why is not None:
            self._turn_away(raw, uid, pid, peer.user, why)
            return None
        self._names[uid] = peer.user
        return peer, True

    def _turn_away(self, raw: socket.socket, uid: int, pid: int, user: str, why: str) -> None:
        """Answer BUSY without waiting (the answer fits the empty send buffer) and count it."""
        if self._busy.note(uid, user, why, time.monotonic()):
            logger.warning(
                "turned away a connection of {} (uid {}, pid {}): {}", user, uid, pid, why
            )
        answer = self._busy_answers.get(why)
        if answer is None:  # encoded once per reason: a flood repeats the same few
            if len(self._busy_answers) > 256:
                self._busy_answers.clear()
            busy = Busy(f"agentd is busy: {why}; nothing was done, try again shortly")
            answer = self._busy_answers[why] = protocol.error(busy)
        try:
            raw.send(answer, socket.MSG_DONTWAIT)
        except OSError:
            pass  # gone already, or not reading: closing is answer enough

    async def _serve_one(
        self, conn: SocketStream | socket.socket, peer: Peer, admitted: bool
    ) -> None:
        if isinstance(conn, socket.socket):
            try:
                stream: SocketStream = await UNIXSocketStream.from_socket(conn)
            except BaseException:
                conn.close()
                raise
        else:
            stream = conn
        try:
            if admitted:
                await self._serve_admitted(stream, peer)
            else:
                refusal = await self.dispatcher.refuse(
                    peer,
                    "use the control socket",
                    "not root, the daemon's user or a member of the control group",
                )
                await self._send(stream, protocol.error(refusal), self.first_byte_timeout_s)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream):
            pass  # the client went away; nothing to tell it
        except TimeoutError:
            pass  # the client does not read its answer
        except Exception as exc:  # one connection must never take the server down
            logger.opt(exception=exc).error("control connection failed")
        finally:
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def _serve_admitted(self, stream: SocketStream, peer: Peer) -> None:
        """Serve one request in the slot :meth:`_screen` took; give the slot back."""
        self._in_flight += 1
        self._idle = anyio.Event() if self._in_flight == 1 else self._idle
        try:
            await self._handle(stream, peer)
        finally:
            self.slots.give_back(peer.uid)
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _send(self, stream: SocketStream, data: bytes, within_s: float | None = None) -> None:
        with anyio.fail_after(self.read_timeout_s if within_s is None else within_s):
            await stream.send(data)

    async def _handle(self, stream: SocketStream, peer: Peer) -> None:
        buffer = protocol.LineBuffer(self.max_message_bytes)
        try:
            line = await self._read_line(stream, buffer)
        except AgentdError as err:
            await self._send(stream, protocol.error(err))
            return
        if line is None:
            return  # connected and left without a request
        try:
            request = protocol.decode_request(line)
        except BadRequest as err:
            logger.info("bad request from {} (uid {}): {}", peer.user, peer.uid, err.message)
            await self._send(stream, protocol.error(err))
            return
        if not self._accepting:
            await self._send(stream, protocol.error(ShuttingDown("the daemon is shutting down")))
            return
        raw = stream.extra(SocketAttribute.raw_socket)
        if hung_up(raw):
            # Its client gave up (a timeout) and reported a failure: running
            # it now would make that report false.
            logger.warning(
                "not running {!r} for {} (uid {}): the client hung up before it ran",
                request.cmd,
                peer.user,
                peer.uid,
            )
            return

        async def emit(data: object) -> None:
            await self._send(stream, protocol.event(data))

        body = None
        if request.args.get("upload") is True:
            body = self._body(stream, buffer)
        try:
            result = await self.dispatcher.dispatch(
                peer, request.cmd, request.args, emit, body=body
            )
        except AgentdError as err:
            await self._send(stream, protocol.error(err))
            return
        await self._send(stream, protocol.ok(result))

    async def _body(
        self, stream: SocketStream, buffer: protocol.LineBuffer
    ) -> AsyncIterator[bytes]:
        """Yield the upload that follows the request line, line by line, until EOF.

        Each read must arrive within the read timeout; the whole upload may
        not exceed ``max_upload_bytes``.
        """
        pending = buffer.take()
        # What arrived with the request line counts toward the limit too.
        total = sum(len(line) + 1 for line in pending) + buffer.pending
        while True:
            if total > self.max_upload_bytes:
                raise MessageTooLarge(
                    f"upload exceeds {self.max_upload_bytes} bytes "
                    "(control.max_upload_bytes); nothing was imported"
                )
            for raw_line in pending:
                yield raw_line
            if buffer.closed:
                return
            try:
                with anyio.fail_after(self.read_timeout_s):
                    chunk = await stream.receive(65536)
            except anyio.EndOfStream:
                tail = buffer.finish()
                if tail:
                    yield tail
                return
            except TimeoutError:
                raise RequestTimeout(
                    f"upload stalled for {self.read_timeout_s:g} s; closing"
                ) from None
            total += len(chunk)
            pending = buffer.feed(chunk)

    async def _read_line(self, stream: SocketStream, buffer: protocol.LineBuffer) -> bytes | None:
        try:
            with anyio.fail_after(self.read_timeout_s):
                first = True
                while True:
                    try:
                        if first:
                            # A connection that says nothing gives its slot back soon.
                            with anyio.fail_after(self.first_byte_timeout_s):
                                chunk = await stream.receive(65536)
                            first = False
                        else:
                            chunk = await stream.receive(65536)
                    except anyio.EndOfStream:
                        if buffer.pending:
                            raise BadRequest("connection closed before the request ended") from None
                        return None
                    lines = buffer.feed(chunk)
                    if lines:
                        # Anything after the first line is the start of an upload.
                        buffer.unread(lines[1:])
                        return lines[0]
        except TimeoutError:
            limit = self.first_byte_timeout_s if first else self.read_timeout_s
            raise RequestTimeout(f"no complete request within {limit:g} s; closing") from None
