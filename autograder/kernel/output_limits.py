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
- **what the grader receives** is bounded before any of it is assembled here: see
  :mod:`autograder.kernel.channels` (a cap on every message's total size, per channel, and on
  what waits unread). What it refused while a cell ran is flagged
  ``Flag [refused-output]: ...`` in that cell; the refused message is simply not there, so the
  cell goes on and later cells run.

Sizes are characters of text (for text fields) as they will be stored in the notebook.
"""

from __future__ import annotations

import typing as t

from nbformat.notebooknode import NotebookNode
from traitlets import HasTraits, Integer

from autograder.kernel.channels import BoundedChannels, describe
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
        # no supported seam: nbclient's on_cell_* hooks see a cell, not its messages, and an
        # update bypasses output(); the private method is pinned in
        # tests/test_upstream_contract.py
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
        refused = refusals(self.kc, self.km)
        if refused:
            reason = f"{label(cell, index)}: {describe(refused)}"
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


def refusals(*connections: t.Any) -> list:
    """What the relays of ``connections`` refused since the last call.

    Parameters
    ----------
    *connections : object
        A kernel client, its manager; those without bounded channels
        (:class:`autograder.kernel.channels.BoundedChannels`) contribute nothing.

    Returns
    -------
    list of autograder.kernel.relay.Refusal
        In the order of ``connections``.
    """
    return [r for c in connections if isinstance(c, BoundedChannels) for r in c.refusals()]


__all__ = ["OutputLimits", "label", "refusals", "stream_output"]
