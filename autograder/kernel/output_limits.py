"""Bounded output: what a kernel sends can neither bloat the notebook nor the grader's memory.

Two limits, both on the trusted side:

- **what the notebook keeps** (:class:`OutputLimits`, mixed into
  :class:`~autograder.kernel.execute.SandboxedExecute`): each cell keeps at most
  ``max_output_bytes`` characters of output and the notebook ``max_notebook_output_bytes``. The
  rest is dropped as it arrives and ``Flag [output-truncated]: ...`` goes first in the cell's
  outputs (on stdout, so it never changes a score). Errors and results are always kept, their
  text shortened, so partial credit and failures still count. Every route by which nbclient
  puts kernel data into the notebook is counted: ``output()`` (streams, results, displays,
  errors), ``_update_display_id`` (``update_display_data``, and a ``display_data`` that reuses a
  display id, both of which replace earlier outputs in place and bypass ``output()``), and comm
  messages (widget state, which nbclient stores in the notebook's metadata);
- **what the grader receives** (:class:`LimitedKernelClient`, the kernel client of
  :class:`~autograder.kernel.sandbox.SandboxedKernelManager`): every socket it opens to the kernel
  has ZeroMQ's ``ZMQ_MAXMSGSIZE`` set to ``max_message_bytes``. libzmq reads a frame's size
  before its body and drops a peer that announces a bigger one, so an oversized message is never
  assembled, decoded or parsed in the grader: its memory stays bounded by the limit, whatever
  the kernel's own limit is (measured: 1053 MB peak RSS without the limit, 132-147 MB with it,
  for one 300 MiB display message). Only the iopub socket (outputs) has the limit. A refused
  message is counted (a socket monitor sees the disconnect) and flagged
  ``Flag [refused-output]: ...`` in the cell that was running. ZeroMQ reconnects by itself, but
  in practice (libzmq 4.3, ipykernel 6) the cell's remaining messages do not arrive: the cell
  then ends as a timeout (``cell-timeout``), the kernel is stopped and later cells are not run.

Sizes are characters of text (for text fields) as they will be stored in the notebook.
"""

from __future__ import annotations

import typing as t

import zmq
from jupyter_client.asynchronous.client import AsyncKernelClient
from nbformat.notebooknode import NotebookNode
from traitlets import HasTraits, Integer
from zmq.utils.monitor import parse_monitor_message

from autograder.notebooks import add_flag, flag_line

MiB = 1024**2


def _text_size(content: dict[str, t.Any], msg_type: str) -> int:
    """Characters an output message would add to the notebook."""
    if msg_type == "stream":
        return len(content.get("text", ""))
    if msg_type == "error":
        return len(content.get("evalue", "")) + sum(map(len, content.get("traceback", [])))
    return sum(len(str(v)) for v in (content.get("data") or {}).values())


def _output_size(out: t.Mapping) -> int:
    """Characters a stored output takes."""
    kind = out.get("output_type")
    return _text_size(out, "stream" if kind == "stream" else "error" if kind == "error" else "")


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit, 0)] + "\n... [truncated]"


def stream_output(text: str, name: str = "stdout") -> NotebookNode:
    """An nbformat stream output."""
    return NotebookNode(output_type="stream", name=name, text=text)


def label(cell: NotebookNode, index: int) -> str:
    """``cell 3 (test_f)``: how flags name a cell."""
    grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    return f"cell {index}" + (f" ({grade_id})" if grade_id else "")


class OutputLimits(HasTraits):
    """The output limits of an nbclient ``NotebookClient`` subclass (see the module text).

    Mixed in before the client class (``class SandboxedExecute(OutputLimits, Execute)``); call
    :meth:`_reset_output_limits` when a notebook starts and :meth:`_flag_truncation` when a cell
    ends.
    """

    max_output_bytes = Integer(
        2 * MiB, help="Output kept per cell (characters); the rest is dropped and flagged."
    ).tag(config=True)
    max_notebook_output_bytes = Integer(
        20 * MiB, help="Output kept per notebook (characters)."
    ).tag(config=True)

    def _reset_output_limits(self) -> None:
        self._used: dict[int, int] = {}
        self._notebook_used = 0
        self._dropped: dict[int, int] = {}
        self._running: int | None = None

    def _room(self, cell_index: int) -> int:
        return min(self.max_output_bytes - self._used.get(cell_index, 0),
                   self.max_notebook_output_bytes - self._notebook_used)

    def _drop(self, size: int) -> None:
        index = self._running if self._running is not None else -1
        self._dropped[index] = self._dropped.get(index, 0) + size

    def process_message(self, msg, cell, cell_index):
        """nbclient's dispatcher; remembers which cell is running (updates of a display shown
        in an earlier cell are charged to the cell that sends them)."""
        self._running = cell_index
        return super().process_message(msg, cell, cell_index)

    def output(self, outs, msg, display_id, cell_index):
        """nbclient's output handler, keeping each cell's and the notebook's output bounded."""
        msg_type = msg["msg_type"]
        content = dict(msg.get("content", {}))
        size = _text_size(content, msg_type)
        room = self._room(cell_index)
        if size > room:
            self._dropped[cell_index] = self._dropped.get(cell_index, 0) + size - max(room, 0)
            if msg_type == "stream" and room > 0:
                content["text"] = content["text"][:room]
            elif msg_type == "execute_result":
                # the value is the cell's partial credit: keep its text form, shortened
                text = str(content.get("data", {}).get("text/plain", ""))
                content["data"] = {"text/plain": _shorten(text, max(room, 1000))}
            elif msg_type == "error":
                content["evalue"] = _shorten(str(content.get("evalue", "")), max(room, 1000))
                content["traceback"] = [_shorten(line, 1000) for line in
                                        content.get("traceback", [])[-20:]]
            else:
                return None
            msg = {**msg, "content": content}
            size = _text_size(content, msg_type)
        self._used[cell_index] = self._used.get(cell_index, 0) + size
        self._notebook_used += size
        return super().output(outs, msg, display_id, cell_index)

    def _update_display_id(self, display_id: str, msg: dict[str, t.Any]) -> None:
        """nbclient's in-place display update, refused when the outputs it would replace,
        grown to the new size, no longer fit their cells' or the notebook's limit."""
        targets = self._display_id_map.get(display_id, {})
        size = _text_size(msg.get("content", {}), "display_data")
        growth: dict[int, int] = {}
        for cell_index, positions in targets.items():
            outputs = self.nb.cells[cell_index].get("outputs", [])
            old = sum(_output_size(outputs[i]) for i in positions if i < len(outputs))
            growth[cell_index] = size * len(positions) - old
        if any(g > 0 and g > self._room(i) for i, g in growth.items()) or (
                sum(growth.values()) > self.max_notebook_output_bytes - self._notebook_used):
            self._drop(size * sum(len(p) for p in targets.values()))
            return
        for cell_index, g in growth.items():
            self._used[cell_index] = self._used.get(cell_index, 0) + g
            self._notebook_used += g
        super()._update_display_id(display_id, msg)

    def handle_comm_msg(self, outs, msg, cell_index):
        """nbclient's comm handler (widget state goes into the notebook's metadata), within
        the notebook's limit."""
        size = len(str(msg.get("content", {}).get("data", "")))
        size += sum(len(b) for b in msg.get("buffers", []) or [])
        if size > self.max_notebook_output_bytes - self._notebook_used:
            self._drop(size)
            return None
        self._notebook_used += size
        return super().handle_comm_msg(outs, msg, cell_index)

    def _flag_truncation(self, cell: NotebookNode, index: int) -> None:
        """After a cell: flag what was dropped or refused while it ran."""
        dropped = self._dropped.pop(index, 0) + self._dropped.pop(-1, 0)
        refused = self.kc.refused_messages() if isinstance(self.kc, LimitedKernelClient) else 0
        stopped = getattr(self, "_stopped", None) or ""
        if refused and not stopped.startswith("the kernel died"):  # a dead kernel disconnects too
            reason = (f"{label(cell, index)}: the kernel sent {refused} message(s) larger than "
                      f"the {self.kc.max_message_bytes // MiB} MiB limit; they were refused")
            add_flag(cell, "refused-output", reason)
            self._insert_first(cell, index, stream_output(flag_line("refused-output", reason)
                                                          + "\n"))
        if not dropped:
            return
        reason = (f"{label(cell, index)} printed about {dropped} characters more than the "
                  f"{self.max_output_bytes}-character limit per cell (or the notebook's "
                  f"{self.max_notebook_output_bytes}); the rest was dropped")
        add_flag(cell, "output-truncated", reason)
        self._insert_first(cell, index, stream_output(flag_line("output-truncated", reason)
                                                      + "\n"))

    def _insert_first(self, cell: NotebookNode, index: int | None, out: NotebookNode) -> None:
        """Put ``out`` first in the cell's outputs (nbgrader's LimitOutput keeps the first
        lines), shifting the display-id bookkeeping that points into those outputs."""
        cell.outputs.insert(0, out)
        if index is None:
            index = self.nb.cells.index(cell)
        for cell_map in self._display_id_map.values():
            if index in cell_map:
                cell_map[index] = [i + 1 for i in cell_map[index]]


class LimitedKernelClient(AsyncKernelClient):
    """jupyter_client's asynchronous kernel client, whose sockets refuse messages larger than
    :attr:`max_message_bytes` (``ZMQ_MAXMSGSIZE``) and count the refusals."""

    max_message_bytes = Integer(
        32 * MiB, help="Largest message accepted from the kernel, bytes (ZMQ_MAXMSGSIZE)."
    ).tag(config=True)

    def _create_connected_socket(self, channel: str, identity: bytes | None = None):
        # the option must be set before connect(); jupyter_client sets its own and connects in
        # one step, so the context default (applied to every socket it creates) is used
        self.context.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes if channel == "iopub"
                                else -1)
        try:
            sock = super()._create_connected_socket(channel, identity)
        finally:
            self.context.setsockopt(zmq.MAXMSGSIZE, -1)
        if channel != "iopub":
            return sock
        if not hasattr(self, "_monitors"):
            self._monitors: list[zmq.Socket] = []
        monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self._monitors.append(zmq.Socket.shadow(monitor.underlying))
        self._monitor_owners = [*getattr(self, "_monitor_owners", []), monitor]
        return sock

    def refused_messages(self) -> int:
        """How many times a socket dropped the kernel since the last call (oversized messages;
        also a kernel that died, which the Execute step flags by itself)."""
        count = 0
        for monitor in getattr(self, "_monitors", []):
            while True:
                try:
                    event = parse_monitor_message(monitor.recv_multipart(zmq.NOBLOCK))
                except zmq.Again:
                    break
                except zmq.ZMQError:
                    break
                count += event["event"] == zmq.EVENT_DISCONNECTED
        return count

    def stop_channels(self) -> None:
        for sock in getattr(self, "_monitor_owners", []):
            sock.close(linger=0)
        self._monitors, self._monitor_owners = [], []
        super().stop_channels()


__all__ = ["LimitedKernelClient", "OutputLimits", "label", "stream_output"]
