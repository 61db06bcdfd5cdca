"""What the grader receives from a kernel: every channel bounded, every message checked.

:class:`LimitedKernelClient` is the kernel client of
:class:`~autograder.kernel.sandbox.SandboxedKernelManager` (its ``client_class``), and the
manager itself mixes in :class:`BoundedChannels` for its own control socket (the one it sends
interrupts on and never reads). For both:

- **a cap per message**: every socket to the kernel goes through a
  :class:`~autograder.kernel.relay.Relay`, which refuses a message whose frames add up to more
  than ``max_message_bytes`` on iopub (outputs, and the answers of hidden checks) or
  ``max_reply_bytes`` on shell, stdin, control and heartbeat, before it is assembled in the
  grader. A refused shell reply becomes an error reply to the same request, so nbclient moves
  on at once. Measured (``nbgrader autograde``, one student, peak resident memory of the
  grading process): 3 iopub messages of 20 frames x 20 MiB took the grader from its 133 MB to
  950 MB before, 154 MB now; 4 shell messages of 300 MB 1115 MB before, 134 MB now; 40 stdin
  messages of 24 MiB 884 MB before, 134 MB now (``tests/test_channels.py``);
- **a bound across messages**: at most two caps per channel sent on and not yet received here.
  :class:`LimitedChannel` (the client's shell, iopub, stdin and control channels) reports every
  message it receives to the relay; a socket nobody reads (stdin, the manager's control
  socket) stops taking messages once two caps are waiting;
- **only Jupyter messages**: :class:`LimitedChannel` skips a message that does not deserialize
  (bad signature, not JSON), whose header, parent header, metadata or content is not a dict, or
  whose type is not a lowercase name. jupyter_client would raise, and nbclient with it (the
  student would be lost), or log the kernel's text as the type of an unhandled message;
- **no heartbeat**: nothing in grading uses it (nbclient asks the kernel manager whether the
  kernel lives), so :meth:`LimitedKernelClient.start_channels` does not start it.

Every refusal is counted (:meth:`BoundedChannels.refusals`) and flagged ``refused-output`` in
the cell that was running (:class:`~autograder.kernel.output_limits.OutputLimits`) or the check
that called (:class:`~autograder.kernel.remote.KernelChannel`).
"""

from __future__ import annotations

import re
import time
import typing as t
from queue import Empty

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from traitlets import HasTraits, Integer, Type

from autograder.kernel.relay import Refusal, Relay

MiB = 1024**2
#: Message types of the Jupyter protocol are lowercase names (``execute_reply``, ``stream``).
_MSG_TYPE = re.compile(r"[a-z][a-z_]{0,63}")


def describe(refusals: list[Refusal]) -> str:
    """What was refused, in one sentence for a flag.

    Parameters
    ----------
    refusals : list of Refusal
        At least one, from :meth:`BoundedChannels.refusals`.

    Returns
    -------
    str
        E.g. ``the kernel sent 3 message(s) on iopub over the grader's 32 MiB limit per
        message; they were refused``.
    """
    parts = []
    for channel in sorted({r.channel for r in refusals}):
        mine = [r for r in refusals if r.channel == channel]
        big = [r for r in mine if r.limit]
        if big:
            parts.append(f"{len(big)} message(s) on {channel} over the grader's "
                         f"{_size(big[0].limit)} limit per message")
        if len(big) < len(mine):
            parts.append(f"{len(mine) - len(big)} message(s) on {channel} that were not valid "
                         "Jupyter messages")
    return "the kernel sent " + "; ".join(parts) + "; they were refused"


def _size(n: int) -> str:
    return f"{n // MiB} MiB" if n % MiB == 0 else f"{n} bytes"


class BoundedChannels(HasTraits):
    """Mixed into a jupyter_client connection (a kernel client or manager): its sockets connect
    through a :class:`~autograder.kernel.relay.Relay` (see the module text)."""

    max_message_bytes = Integer(
        32 * MiB, help="Largest message accepted from the kernel on iopub (outputs, answers of "
        "hidden checks): all its frames together, bytes."
    ).tag(config=True)
    max_reply_bytes = Integer(
        1 * MiB, help="Largest message accepted from the kernel on the shell, stdin, control "
        "and heartbeat channels, bytes."
    ).tag(config=True)

    @property
    def relay(self) -> Relay:
        """This connection's relay, made when the first socket connects."""
        relay = getattr(self, "_bounded_relay", None)
        if relay is None:
            relay = self._bounded_relay = Relay(
                {"iopub": self.max_message_bytes, "default": self.max_reply_bytes},
                session=getattr(self, "session", None))
        return relay

    def _make_url(self, channel: str) -> str:
        # jupyter_client's one place that turns the connection info into a socket address
        # (ConnectionFileMixin._make_url, tests/test_upstream_contract.py): every socket of
        # this connection, the heartbeat's included, is made from it
        if getattr(self, "curve_publickey", None):
            raise ValueError("the grader's message limits read ZMTP with the NULL mechanism: "
                             "set transport_encryption='disabled' (the sandboxed kernel's "
                             "sockets are in a private network namespace)")
        return self.relay.url(channel, super()._make_url(channel))  # type: ignore[misc]

    def refusals(self) -> list[Refusal]:
        """Messages refused since the last call."""
        relay = getattr(self, "_bounded_relay", None)
        return relay.refusals() if relay is not None else []

    def close_relay(self) -> None:
        """Close the relay (its sockets, threads and folder); a new one is made if needed."""
        relay, self._bounded_relay = getattr(self, "_bounded_relay", None), None
        if relay is not None:
            relay.close()


class LimitedChannel(AsyncZMQSocketChannel):
    """jupyter_client's asynchronous channel, reporting what it receives to the relay and
    skipping what is not a Jupyter message (see the module text)."""

    relay: Relay | None = None
    name = ""

    async def get_msg(self, timeout: float | None = None) -> dict[str, t.Any]:
        """The next valid message, waiting at most ``timeout`` seconds in all.

        Raises
        ------
        queue.Empty
            If none came in time.
        """
        assert self.socket is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            if not await self.socket.poll(wait):
                raise Empty
            frames = await self.socket.recv_multipart()
            if self.relay is not None:
                self.relay.account(self.name).received(sum(map(len, frames)))
            msg = self._decode(frames)
            if msg is not None:
                return msg

    def _decode(self, frames: list[bytes]) -> dict[str, t.Any] | None:
        try:
            _, signed = self.session.feed_identities(frames)
            msg = self.session.deserialize(signed)
        except Exception:  # jupyter_client raises ValueError, json's errors, KeyError, ...
            msg = None
        if not (isinstance(msg, dict) and all(isinstance(msg.get(k), dict) for k in
                                              ("header", "parent_header", "metadata", "content"))
                and isinstance(msg.get("msg_type"), str) and _MSG_TYPE.fullmatch(msg["msg_type"])):
            if self.relay is not None:
                self.relay.record(Refusal(self.name, sum(map(len, frames)), 0))
            return None
        return msg


class LimitedKernelClient(BoundedChannels, AsyncKernelClient):
    """jupyter_client's asynchronous kernel client with bounded channels (see the module text)."""

    shell_channel_class = Type(LimitedChannel)
    iopub_channel_class = Type(LimitedChannel)
    stdin_channel_class = Type(LimitedChannel)
    control_channel_class = Type(LimitedChannel)

    def _bounded(self, channel: t.Any, name: str) -> t.Any:
        if isinstance(channel, LimitedChannel) and channel.relay is None:
            channel.relay, channel.name = self.relay, name
        return channel

    @property
    def shell_channel(self) -> t.Any:
        return self._bounded(super().shell_channel, "shell")

    @property
    def iopub_channel(self) -> t.Any:
        return self._bounded(super().iopub_channel, "iopub")

    @property
    def stdin_channel(self) -> t.Any:
        return self._bounded(super().stdin_channel, "stdin")

    @property
    def control_channel(self) -> t.Any:
        return self._bounded(super().control_channel, "control")

    def start_channels(self, shell: bool = True, iopub: bool = True, stdin: bool = True,
                       hb: bool = False, control: bool = True) -> None:
        """jupyter_client's ``start_channels``, without the heartbeat unless asked."""
        super().start_channels(shell=shell, iopub=iopub, stdin=stdin, hb=hb, control=control)

    def stop_channels(self) -> None:
        super().stop_channels()
        self.close_relay()


__all__ = ["BoundedChannels", "LimitedChannel", "LimitedKernelClient", "describe"]
