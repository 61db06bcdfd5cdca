"""A relay between the grader and a kernel that bounds every message the kernel sends.

Why a relay: ZeroMQ's own limit, ``ZMQ_MAXMSGSIZE``, caps one *frame*, and a Jupyter message may
have any number of frames (its buffers). libzmq delivers a multipart message atomically: the
application sees its first frame only once every frame has arrived, so no receive loop in the
grader can stop a big one either. Measured (pyzmq 27, libzmq 4.3, ipc): when the first frame of
a message of 20 frames x 20 MiB became readable, the receiving process already held 416 MB.
The grader's memory must therefore be protected *before* libzmq sees the bytes.

What it does: for each channel the grader's ZeroMQ socket connects to a unix socket of this
relay (:meth:`Relay.url`) in a private folder of the grader's, never inside the sandbox; each
connection is relayed to the kernel's own socket (``ipc`` or ``tcp``) by two threads. Bytes from
the grader pass unchanged. Bytes from the kernel are read as ZMTP 3 (https://rfc.zeromq.org/spec/23/
and /37/: a 64-byte greeting, then frames of a flags byte, a 1- or 8-byte size and a body):

- a message is held until its last frame has arrived, then forwarded; a message whose frames
  add up to more than the channel's cap (:attr:`Relay.limits`) is never assembled: what was held
  is dropped, the rest of it is read and thrown away as it arrives, and the refusal is counted
  (:meth:`Relay.refusals`). On the shell channel, where the grader waits for the reply to its
  request, the refused message is replaced by a short signed error reply to the same request
  (``ename`` ``RefusedOutput``), so the grader goes on at once instead of waiting out the
  cell's time limit. The connection stays up: the messages after it arrive as usual;
- at most :attr:`Relay.budget` bytes per channel are forwarded and not yet received by the
  grader (the grader's channels report what they received: :meth:`Account.received`); past it
  the relay stops reading from the kernel until the grader has caught up, so a kernel cannot
  queue messages in the grader on a socket nobody reads (stdin, control);
- anything else (another ZMTP version, a security mechanism other than NULL, a malformed frame,
  an oversized command) closes that connection; the grader's socket reconnects by itself.

Memory: the grader holds at most one message per channel here (the cap) plus the budget in its
ZeroMQ queues. Time: honest messages cost two thread hand-offs (measured in
``tests/test_channels.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import threading
import typing as t
from dataclasses import dataclass

#: ZMTP frame flags (RFC 23, section "Framing").
MORE, LONG, COMMAND = 0x01, 0x02, 0x04
#: Largest command frame accepted (READY carries a few properties; nothing else is expected).
MAX_COMMAND = 64 * 1024
#: Bytes read from the kernel at a time.
CHUNK = 256 * 1024
#: The frame jupyter_client puts between routing identities and the signed message.
DELIM = b"<IDS|MSG>"


class ProtocolError(Exception):
    """The kernel's side of a connection is not ZMTP 3 with the NULL mechanism."""


@dataclass(frozen=True)
class Refusal:
    """A message the grader did not take: its channel, its size (as far as it was read) and
    the cap it broke (0: it was not a valid Jupyter message)."""

    channel: str
    size: int
    limit: int


class Account:
    """Bytes forwarded to the grader on one channel and not yet received by it.

    Parameters
    ----------
    budget : int
        Bytes that may be in flight; one message is always let through when none is.
    """

    def __init__(self, budget: int):
        self.budget, self.pending, self.closed = budget, 0, False
        #: Whether a connection is waiting for the grader to catch up.
        self.waiting = False
        self._cond = threading.Condition()

    def reserve(self, nbytes: int, pair: _Pair | None = None) -> bool:
        """Wait until ``nbytes`` more fit in the budget, then count them; False once the
        account or ``pair`` (the connection that waits) is closed."""
        with self._cond:
            while (not self.closed and not (pair and pair.closed) and self.pending
                   and self.pending + nbytes > self.budget):
                self.waiting = True
                self._cond.wait()
            self.waiting = False
            if self.closed or (pair and pair.closed):
                return False
            self.pending += nbytes
            return True

    def received(self, nbytes: int) -> None:
        """The grader received ``nbytes`` (the frames of one message) on this channel."""
        with self._cond:
            self.pending = max(0, self.pending - nbytes)
            self._cond.notify_all()

    def wake(self) -> None:
        """Let waiting connections look again whether they were closed."""
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class _Pair:
    """One relayed connection: the grader's end and the kernel's, closed by the last of its two
    threads to finish (so no thread ever uses a closed socket)."""

    def __init__(self, grader: socket.socket, kernel: socket.socket, account: Account):
        self.grader, self.kernel, self.account = grader, kernel, account
        self.closed, self._left, self._lock = False, 2, threading.Lock()

    def hang_up(self) -> None:
        """Stop both threads: their blocked reads return, a wait for the budget ends."""
        self.closed = True
        for sock in (self.grader, self.kernel):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.account.wake()

    def done(self) -> None:
        self.hang_up()
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            self.grader.close()
            self.kernel.close()


class _Reader:
    """Buffered reads of exact sizes from a socket; :meth:`skip` discards without keeping.

    What was received and not yet read is ``buf[pos:]``; the buffer is compacted only when it
    is refilled, so reading many small frames costs no copying of the rest.
    """

    def __init__(self, sock: socket.socket):
        self.sock, self.buf, self.pos = sock, bytearray(), 0

    def _fill(self) -> None:
        if self.pos:
            del self.buf[:self.pos]
            self.pos = 0
        chunk = self.sock.recv(CHUNK)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def _take(self, n: int) -> memoryview:
        view = memoryview(self.buf)[self.pos:self.pos + n]
        self.pos += len(view)
        return view

    def read(self, n: int) -> bytes | bytearray:
        if n <= len(self.buf) - self.pos:
            with self._take(n) as view:
                return bytes(view)
        out = bytearray(n)
        with self._take(n) as view:
            got = len(view)
            out[:got] = view
        while got < n:  # large frames go straight into their own buffer
            with memoryview(out)[got:] as rest:
                k = self.sock.recv_into(rest, min(n - got, 16 * CHUNK))
            if not k:
                raise EOFError
            got += k
        return out

    def skip(self, n: int) -> None:
        with self._take(n) as view:
            n -= len(view)
        scratch = bytearray(min(n, CHUNK))
        while n:
            k = self.sock.recv_into(scratch, min(n, CHUNK))
            if not k:
                raise EOFError
            n -= k

    def byte(self) -> int:
        if self.pos >= len(self.buf):
            self._fill()
        self.pos += 1
        return self.buf[self.pos - 1]


def _frame(body: bytes | bytearray, more: bool) -> bytes:
    """The ZMTP header of a message frame holding ``body``."""
    flags = MORE if more else 0
    if len(body) > 255:
        return bytes([flags | LONG]) + len(body).to_bytes(8, "big")
    return bytes([flags, len(body)])


def _connect(url: str) -> socket.socket:
    """A stream socket connected to a ZeroMQ ``tcp://host:port`` or ``ipc://path`` address."""
    transport, _, where = url.partition("://")
    if transport == "ipc":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        sock.connect(where)
    elif transport == "tcp":
        host, _, port = where.rpartition(":")
        sock = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
    else:
        raise ValueError(f"url: expected a tcp:// or ipc:// address, got {url!r}")
    sock.settimeout(None)
    return sock


class Relay:
    """The relays of one kernel connection (a client's or a kernel manager's sockets).

    Parameters
    ----------
    limits : dict
        Channel name -> the largest message accepted from the kernel on it, in bytes (the sum
        of its frames); a channel not named gets ``limits["default"]``.
    session : jupyter_client.session.Session, optional
        Signs the error reply that replaces a refused shell message; without it the message is
        only dropped.
    budget_factor : int
        Bytes in flight per channel, in caps (see the module text).

    Raises
    ------
    ValueError
        If ``limits`` has no ``"default"`` or a cap that is not a positive number of bytes.
    """

    def __init__(self, limits: dict[str, int], session: t.Any = None, budget_factor: int = 2):
        if "default" not in limits or any(v <= 0 for v in limits.values()):
            raise ValueError(f"limits: expected positive byte counts with a 'default', got {limits}")
        self.limits, self.session, self.budget_factor = dict(limits), session, budget_factor
        self._lock = threading.Lock()
        self._dir: str | None = None
        self._listeners: dict[tuple[str, str], tuple[socket.socket, str]] = {}
        self._accounts: dict[str, Account] = {}
        self._pairs: dict[tuple[str, str], _Pair] = {}  # one per listener: the grader's link
        self._refused: list[Refusal] = []
        self.closed = False

    def limit(self, channel: str) -> int:
        """The cap of ``channel``, bytes."""
        return self.limits.get(channel, self.limits["default"])

    def account(self, channel: str) -> Account:
        """The in-flight count of ``channel`` (the grader's channel reports to it)."""
        with self._lock:
            if channel not in self._accounts:
                self._accounts[channel] = Account(self.budget_factor * self.limit(channel))
            return self._accounts[channel]

    def url(self, channel: str, kernel_url: str) -> str:
        """The address the grader connects to for ``channel``, relayed to ``kernel_url``.

        Parameters
        ----------
        channel : str
            ``"shell"``, ``"iopub"``, ``"stdin"``, ``"control"`` or ``"hb"``: picks the cap.
        kernel_url : str
            The kernel's own socket, ``tcp://host:port`` or ``ipc://path``.

        Returns
        -------
        str
            ``ipc://<private folder>/<channel>-<n>``, the same for the same arguments.

        Raises
        ------
        RuntimeError
            If the relay was closed.
        """
        key = (channel, kernel_url)
        with self._lock:
            if self.closed:
                raise RuntimeError("the relay is closed")
            if self._dir is None:
                tmp = tempfile.gettempdir()  # unix socket paths are limited to 107 bytes
                self._dir = tempfile.mkdtemp(prefix="bn-relay-", dir=tmp if len(tmp) < 60
                                             else "/tmp")
            if key not in self._listeners:
                path = os.path.join(self._dir, f"{channel}-{len(self._listeners)}")
                listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                listener.bind(path)
                listener.listen(8)
                listener.settimeout(0.5)
                self._listeners[key] = (listener, path)
                threading.Thread(target=self._accept, args=(listener, key), daemon=True,
                                 name=f"relay-{channel}").start()
            return f"ipc://{self._listeners[key][1]}"

    def record(self, refusal: Refusal) -> None:
        """Count a refusal (the grader's channel records the messages it could not read)."""
        with self._lock:
            self._refused.append(refusal)

    def refusals(self) -> list[Refusal]:
        """The messages refused since the last call."""
        with self._lock:
            refused, self._refused = self._refused, []
        return refused

    def close(self) -> None:
        """Stop relaying: close every socket, wake every thread, remove the folder."""
        with self._lock:
            self.closed = True
            listeners = [listener for listener, _ in self._listeners.values()]
            pairs = list(self._pairs.values())
            self._listeners, self._pairs = {}, {}
            accounts = list(self._accounts.values())
            folder, self._dir = self._dir, None
        for account in accounts:
            account.close()
        for pair in pairs:
            pair.hang_up()
        for listener in listeners:
            listener.close()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    # -- the threads ---------------------------------------------------------------------------

    def _accept(self, listener: socket.socket, key: tuple[str, str]) -> None:
        channel, kernel_url = key
        while not self.closed:
            try:
                grader, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                kernel = _connect(kernel_url)
            except OSError:  # the kernel is gone or not up yet: the grader's socket retries
                grader.close()
                continue
            grader.settimeout(None)
            pair = _Pair(grader, kernel, self.account(channel))
            with self._lock:
                if self.closed:
                    pair.hang_up()
                    pair.done()
                    pair.done()
                    return
                # the grader's socket has one link to this listener: a new one replaces it
                old, self._pairs[key] = self._pairs.get(key), pair
            if old is not None:
                old.hang_up()
            threading.Thread(target=self._upstream, args=(pair,), daemon=True,
                             name=f"relay-{channel}-up").start()
            threading.Thread(target=self._downstream, args=(pair, channel), daemon=True,
                             name=f"relay-{channel}-down").start()

    @staticmethod
    def _upstream(pair: _Pair) -> None:
        """Grader -> kernel: the bytes as they are."""
        try:
            while data := pair.grader.recv(CHUNK):
                pair.kernel.sendall(data)
        except OSError:
            pass
        finally:
            pair.done()

    def _downstream(self, pair: _Pair, channel: str) -> None:
        """Kernel -> grader: ZMTP 3, each message held until complete and within the cap."""
        reader, grader = _Reader(pair.kernel), pair.grader
        account, cap = pair.account, self.limit(channel)
        try:
            self._greeting(reader, grader)
            held: list[bytes | bytearray] = []
            size, skipping = 0, False
            while True:
                flags = reader.byte()
                if flags & ~(MORE | LONG | COMMAND):
                    raise ProtocolError(f"frame flags {flags:#x}")
                length = int.from_bytes(reader.read(8), "big") if flags & LONG else reader.byte()
                if flags & COMMAND:
                    if flags & MORE or length > MAX_COMMAND or held or skipping:
                        raise ProtocolError("a command frame out of place or too large")
                    grader.sendall(bytes([flags]) + (length.to_bytes(8, "big") if flags & LONG
                                                     else bytes([length])) + reader.read(length))
                    continue
                more = bool(flags & MORE)
                if not skipping and size + length > cap:
                    self._refuse(channel, held, size + length, cap, pair)
                    held, size, skipping = [], 0, True
                if skipping:
                    reader.skip(length)
                    skipping = more
                    continue
                held.append(reader.read(length))
                size += length
                if not more:
                    if not account.reserve(size, pair):
                        return
                    self._send(grader, held)
                    held, size = [], 0
        except (EOFError, OSError, ProtocolError):
            pass
        finally:
            pair.done()

    @staticmethod
    def _greeting(reader: _Reader, grader: socket.socket) -> None:
        """Check and pass on the kernel's greeting, piece by piece as libzmq exchanges it (its
        signature, then its major version, then the rest), so neither side waits for the other."""
        signature = reader.read(10)
        if signature[0] != 0xFF or not signature[9] & 1:
            raise ProtocolError("not a ZMTP 2+ signature")
        grader.sendall(signature)
        major = reader.read(1)
        if major[0] < 3:
            raise ProtocolError(f"ZMTP major version {major[0]}")
        grader.sendall(major)
        rest = reader.read(53)  # minor version, mechanism (20), as-server, filler (31)
        if bytes(rest[1:21]).rstrip(b"\0") != b"NULL":
            raise ProtocolError("a security mechanism other than NULL")
        grader.sendall(rest)

    @staticmethod
    def _send(grader: socket.socket, frames: list[bytes | bytearray]) -> None:
        last = len(frames) - 1
        if sum(map(len, frames)) <= CHUNK:
            grader.sendall(b"".join(_frame(f, i < last) + f for i, f in enumerate(frames)))
            return
        for i, body in enumerate(frames):
            grader.sendall(_frame(body, i < last))
            grader.sendall(body)

    def _refuse(self, channel: str, held: list, size: int, cap: int, pair: _Pair) -> None:
        self.record(Refusal(channel, size, cap))
        if channel != "shell" or self.session is None:
            return
        reply = self._error_reply(held, cap)
        if reply is not None and pair.account.reserve(sum(map(len, reply)), pair):
            self._send(pair.grader, reply)

    def _error_reply(self, held: list, cap: int) -> list[bytes] | None:
        """The frames of an error reply to the request the refused message answers (its
        routing frames, header and parent header kept, its content replaced), or None when
        those frames are not among the ones held."""
        frames = [bytes(f) for f in held]
        if DELIM not in frames:
            return None
        at = frames.index(DELIM)
        if len(frames) < at + 4:  # delimiter, signature, header, parent header
            return None
        header, parent = frames[at + 2], frames[at + 3]
        metadata = b"{}"
        content = json.dumps({
            "status": "error", "execution_count": None, "ename": "RefusedOutput",
            "evalue": f"the kernel's reply was larger than the grader's limit of {cap} bytes "
                      "per message and was refused", "traceback": [],
        }).encode()
        signature = self.session.sign([header, parent, metadata, content])
        return [*frames[:at + 1], signature, header, parent, metadata, content]


__all__ = ["Account", "ProtocolError", "Refusal", "Relay"]
