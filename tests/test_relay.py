"""The relay, the grader's channel and its log, each alone (issue 19, section 2).

- the relay (:mod:`autograder.kernel.relay`) with raw ZeroMQ sockets on both sides, each
  attack first shown to work on a direct connection (the oracle: libzmq's own behaviour);
- the grader's channel (:class:`autograder.kernel.channels.LimitedChannel`) and the log
  (:mod:`autograder.kernel.terminal`);
- the trusted call path (:mod:`autograder.kernel.remote`) on a real kernel behind the bounded
  client.

``tests/test_channels.py`` grades the hostile kernels of ``tests/hostile/channel_cases.py``
for real through both front doors.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import threading
import time
from io import StringIO
from pathlib import Path

import pytest
import zmq
import zmq.asyncio
from conftest import load_hostile_cases
from jupyter_client.session import Session

from autograder.kernel import terminal
from autograder.kernel.channels import LimitedChannel, describe
from autograder.kernel.relay import Relay

cases = load_hostile_cases("channel_cases")
MiB = 2**20


# -- the relay, with raw ZeroMQ ---------------------------------------------------------------


def _status_mb(field: str) -> float:
    text = Path("/proc/self/status").read_text()
    return int(text.split(f"{field}:")[1].split()[0]) / 1000


class _Growth:
    """How far this process's resident memory rose above where it was at the start, MB
    (Linux: ``clear_refs`` 5 resets the peak, proc(5))."""

    def __enter__(self):
        Path("/proc/self/clear_refs").write_text("5")
        self.base = _status_mb("VmRSS")
        return self

    def __exit__(self, *exc):
        self.mb = _status_mb("VmHWM") - self.base


@pytest.fixture
def zmq_pair(tmp_path):
    """``connect(relay=None, channel="iopub")`` -> ``(kernel, grader)``: a bound PUSH socket
    standing for the kernel and a PULL socket connected to it, directly or through ``relay``."""
    ctx = zmq.Context()
    opened = []

    def connect(relay: Relay | None = None, channel: str = "iopub"):
        address = f"ipc://{tmp_path}/kernel-{len(opened)}"
        kernel, grader = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
        opened.extend((kernel, grader))
        kernel.bind(address)
        grader.connect(address if relay is None else relay.url(channel, address))
        return kernel, grader

    yield connect
    for sock in opened:
        sock.close(linger=0)
    ctx.term()


def _recv(sock: zmq.Socket, timeout: float = 10) -> list[bytes] | None:
    return sock.recv_multipart() if sock.poll(int(timeout * 1000)) else None


def test_a_message_of_many_frames_over_the_cap_never_reaches_the_grader(zmq_pair):
    frames = [bytes([i]) * (20 * MiB) for i in range(10)]  # 200 MiB, every frame under 32 MiB
    # the oracle: a direct connection with ZeroMQ's per-frame cap takes all of it in at once
    kernel, direct = zmq_pair()
    direct.setsockopt(zmq.MAXMSGSIZE, 32 * MiB)
    with _Growth() as direct_growth:
        kernel.send_multipart(frames, copy=False)
        got = _recv(direct)
        assert got is not None and sum(map(len, got)) == 200 * MiB
        del got
    # through the relay: refused before it is assembled, and the next message still arrives
    relay = Relay({"iopub": 32 * MiB, "default": MiB})
    try:
        kernel, pull = zmq_pair(relay, "iopub")
        with _Growth() as relayed_growth:
            kernel.send_multipart(frames, copy=False)
            kernel.send_multipart([b"after", b"x" * 1000])
            assert _recv(pull) == [b"after", b"x" * 1000]
        refused = relay.refusals()
    finally:
        relay.close()
    print(f"memory taken receiving 10 x 20 MiB frames: {direct_growth.mb:.0f} MB directly, "
          f"{relayed_growth.mb:.0f} MB through the relay")
    assert direct_growth.mb > 200
    assert relayed_growth.mb < 40
    assert len(refused) == 1 and refused[0].channel == "iopub"
    assert refused[0].limit == 32 * MiB and refused[0].size > 32 * MiB


def test_messages_within_the_cap_pass_unchanged_in_order(zmq_pair):
    relay = Relay({"default": 4 * MiB})
    try:
        kernel, pull = zmq_pair(relay, "shell")
        sent = [[os.urandom(n) for n in sizes] for sizes in
                ([0], [1, 255, 256], [300_000, 3], [4 * MiB - 10, 10], [1] * 50)]
        for message in sent:
            kernel.send_multipart(message)
        assert [_recv(pull) for _ in sent] == sent
        assert relay.refusals() == []
    finally:
        relay.close()


def test_what_waits_unread_is_bounded_by_the_budget(zmq_pair):
    relay = Relay({"default": MiB})  # budget: 2 MiB in flight
    try:
        kernel, pull = zmq_pair(relay, "stdin")
        account = relay.account("stdin")
        for _ in range(50):
            kernel.send(b"s" * (700 * 1024))
        deadline = time.monotonic() + 20
        while not account.waiting and time.monotonic() < deadline:  # the relay holds back
            time.sleep(0.01)
        assert account.waiting
        waiting = []
        while (message := _recv(pull, timeout=0.2)) is not None:
            waiting.append(message)
        assert len(waiting) == 2 and account.pending == 2 * 700 * 1024  # not 50
        account.received(sum(len(m[0]) for m in waiting))
        assert _recv(pull) is not None  # reading lets the next ones through
    finally:
        relay.close()


class _RawKernel:
    """A unix-socket server at the kernel's address that speaks whatever bytes it is given."""

    def __init__(self, path: str, greeting: bytes):
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(1)
        self.greeting, self.closed_by_peer = greeting, threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        try:
            conn.sendall(self.greeting)
            while conn.recv(4096):
                pass
            self.closed_by_peer.set()
        except OSError:
            self.closed_by_peer.set()
        finally:
            conn.close()


ZMTP3 = b"\xff" + b"\0" * 8 + b"\x7f" + b"\x03\x00"


@pytest.mark.parametrize("greeting", [
    b"GET / HTTP/1.1\r\n\r\n",  # not ZeroMQ
    b"\xff" + b"\0" * 8 + b"\x7f\x01\x08",  # ZMTP 2.0 (the relay reads ZMTP 3 only)
    ZMTP3 + b"CURVE".ljust(20, b"\0") + b"\0" * 32,  # another security mechanism
    ZMTP3 + b"NULL".ljust(20, b"\0") + b"\0" * 32 + b"\x20\x01x",  # bad frame flags
    ZMTP3 + b"NULL".ljust(20, b"\0") + b"\0" * 32 + b"\x06" + (10**6).to_bytes(8, "big"),
], ids=["http", "zmtp2", "curve", "flags", "huge-command"])
def test_a_kernel_that_does_not_speak_zmtp3_null_is_hung_up_on(tmp_path, greeting):
    kernel = _RawKernel(str(tmp_path / "kernel"), greeting)
    relay = Relay({"default": MiB})
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.linger = 0
    try:
        pull.connect(relay.url("shell", f"ipc://{tmp_path}/kernel"))
        assert kernel.closed_by_peer.wait(10)
        assert pull.poll(100) == 0
    finally:
        pull.close()
        ctx.term()
        relay.close()
        kernel.server.close()


def test_a_refused_shell_reply_becomes_a_signed_error_reply(tmp_path):
    session = Session(key=b"secret")
    ctx = zmq.Context()
    kernel = ctx.socket(zmq.ROUTER)
    kernel.linger = 0
    kernel.bind(f"ipc://{tmp_path}/shell")
    relay = Relay({"default": MiB}, session=session)
    grader = ctx.socket(zmq.DEALER)
    grader.linger = 0
    try:
        grader.connect(relay.url("shell", f"ipc://{tmp_path}/shell"))
        request = session.send(grader, "execute_request", {"code": "1"})
        idents, frames = session.feed_identities(kernel.recv_multipart())
        parent = session.deserialize(frames)
        session.send(kernel, "execute_reply", {"status": "ok", "pad": "p" * (3 * MiB)},
                     parent=parent, ident=idents)
        reply = session.deserialize(session.feed_identities(_recv(grader))[1])  # signature checked
        assert reply["parent_header"]["msg_id"] == request["header"]["msg_id"]
        assert reply["msg_type"] == "execute_reply"
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "RefusedOutput"
        refused = relay.refusals()
        assert len(refused) == 1 and refused[0].channel == "shell" and refused[0].limit == MiB
    finally:
        grader.close()
        kernel.close()
        ctx.term()
        relay.close()


# -- the grader's channel and its log -------------------------------------------------------


def _frames(session: Session, header: bytes, parent: bytes = b"{}",
            content: bytes = b'{"name": "stdout", "text": "hi"}') -> list[bytes]:
    """A message as a kernel sends it on iopub, signed with the session's key."""
    metadata = b"{}"
    return [b"<IDS|MSG>", session.sign([header, parent, metadata, content]), header, parent,
            metadata, content]


def _header(msg_type: str) -> bytes:
    return json.dumps({"msg_id": "m", "msg_type": msg_type, "session": "s", "username": "u",
                       "date": "2024-01-01T00:00:00Z", "version": "5.3"}).encode()


def test_the_grader_channel_skips_what_is_not_a_jupyter_message(tmp_path):
    session = Session(key=b"secret")
    sent = {
        "bad signature": [b"<IDS|MSG>", b"0" * 64, *_frames(session, _header("stream"))[2:]],
        "header not JSON": _frames(session, b"{not json"),
        "parent not a dict": _frames(session, _header("stream"), parent=b"[]"),
        "content not a dict": _frames(session, _header("stream"), content=b'"text"'),
        "type with a newline": _frames(session, _header("x\n[AutogradeApp | INFO] all good")),
    }
    valid = _frames(session, _header("stream"))

    async def receive():
        ctx = zmq.asyncio.Context()
        push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
        push.bind(f"ipc://{tmp_path}/iopub")
        pull.connect(f"ipc://{tmp_path}/iopub")
        relay = Relay({"default": MiB})
        channel = LimitedChannel(pull, session)
        channel.relay, channel.name = relay, "iopub"
        relay.account("iopub").pending = sum(len(f) for m in [*sent.values(), valid] for f in m)
        for frames in [*sent.values(), valid]:
            await push.send_multipart(frames)
        try:
            return await channel.get_msg(timeout=10), relay.refusals(), relay.account("iopub")
        finally:
            push.close(0)
            pull.close(0)
            ctx.term()
            relay.close()

    msg, refused, account = asyncio.run(receive())
    assert msg["msg_type"] == "stream" and msg["content"] == {"name": "stdout", "text": "hi"}
    assert [(r.channel, r.limit) for r in refused] == [("iopub", 0)] * len(sent)
    assert account.pending == 0  # every message received was reported to the relay
    assert describe(refused) == ("the kernel sent 5 message(s) on iopub that were not valid "
                                 "Jupyter messages; they were refused")


@pytest.fixture
def log_lines():
    """A logger formatted as nbgrader's, protected, and the lines it wrote."""
    out = StringIO()
    logger = logging.getLogger(f"test_channels.{time.monotonic_ns()}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    for _ in range(2):  # a record reaching two handlers is rewritten once
        handler = logging.StreamHandler(out)
        handler.setFormatter(logging.Formatter("[AutogradeApp | %(levelname)s] %(message)s"))
        logger.addHandler(handler)
    terminal.protect_log(logger)
    yield logger, lambda: out.getvalue().splitlines()


LINE_OF_NBGRADER = re.compile(r"\[\w+ \| [A-Z]+\] ")


def test_a_newline_in_logged_text_never_starts_a_line_of_its_own(log_lines):
    logger, lines = log_lines
    forged = f"x\n[AutogradeApp | INFO] {cases.FORGED}\r\n[AutogradeApp | ERROR] bad"
    logger.error("unhandled iopub msg: %s", forged)
    try:
        raise ValueError(forged)
    except ValueError:
        logger.exception("failed")
    starts = [line for line in lines() if LINE_OF_NBGRADER.match(line)]
    assert starts == ["[AutogradeApp | ERROR] unhandled iopub msg: x"] * 2 + \
        ["[AutogradeApp | ERROR] failed"] * 2
    assert all(line.startswith("    | ") for line in lines() if line not in starts)
    assert not any("    |     | " in line for line in lines())  # not prefixed twice


def test_the_kernels_own_output_is_logged_quoted(log_lines):
    logger, lines = log_lines
    read, write = os.pipe()
    pump = terminal.KernelOutputPump(read, logger)
    os.write(write, f"[AutogradeApp | INFO] {cases.FORGED}\n\x1b[2Jok 'quoted'\n".encode())
    os.close(write)
    pump.thread.join(10)
    assert lines()[::2] == [f"[AutogradeApp | INFO] kernel output: '[AutogradeApp | INFO] "
                            f"{cases.FORGED}'", "[AutogradeApp | INFO] kernel output: "
                            "\"ok 'quoted'\""]


# -- the trusted call path on the bounded client ------------------------------------------


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """``(channel, run)``: a plain ipykernel behind the grader's bounded client."""
    from kernels import kernel_channel

    with kernel_channel(cwd=tmp_path_factory.mktemp("kernel"), timeout=30,
                        bounded=True) as pair:
        yield pair


def _call_in_thread(fn, *args):
    """``fn(*args)`` in a thread: (returned within 60 s, its value or exception)."""
    out: dict = {}

    def target():
        try:
            out["value"] = fn(*args)
        except BaseException as exc:  # KernelGone is a BaseException
            out["value"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(60)
    return not thread.is_alive(), out.get("value")


def test_an_answer_over_the_cap_is_refused_at_once_and_flagged(kernel):
    from autograder.kernel.remote import KernelFunction, Refused

    channel, run = kernel
    run("import numpy as np\ndef big(x):\n    return np.arange(5_000_000, dtype=np.float64)\n"
        "def small(x):\n    return x + 1")
    channel.start_check()
    returned, value = _call_in_thread(KernelFunction(channel, "big"), 1.0)
    assert returned and isinstance(value, Refused) and "too large" in str(value)
    assert [kind for kind, _ in channel.flags] == ["refused-output"]
    assert "on iopub over the grader's 32 MiB limit" in channel.flags[0][1]
    assert KernelFunction(channel, "small")(1.0) == 2.0  # the kernel answers the next call


@pytest.mark.nbgrader
def test_a_kernel_that_fakes_idle_and_never_replies_stops_the_check(tmp_path):
    from kernels import kernel_channel

    from autograder.kernel.remote import KernelFunction, KernelGone

    with kernel_channel(cwd=tmp_path, timeout=30, bounded=True) as (channel, run):
        run(cases.CASES["junk_shell"].answer)  # its own kernel: f never returns
        channel.start_check()
        returned, value = _call_in_thread(KernelFunction(channel, "f"), 1)
    assert returned, "the grader still waits for a reply"
    assert isinstance(value, KernelGone) and value.kind == "cell-timeout" and value.stopped
    assert "sent no reply" in value.reason
