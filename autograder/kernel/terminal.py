"""Kernel text on the grader's terminal and in its logs: quoted, and never a line of its own.

Two routes carry text the student controls to the instructor's terminal while nbgrader grades:

- **log records** that quote kernel messages or notebook content (nbclient's
  ``unhandled iopub msg: <msg_type>``, a file name in a rejected submission's reason, a
  traceback, ``Executing cell: <source>`` at debug level, ...). :func:`protect_log` puts
  :class:`TerminalSafeFilter` on the handlers of the grading logger, so every record is
  rewritten with :func:`autograder.notebooks.terminal_safe` (no escape or control sequences)
  and every line after its first is indented behind :data:`INDENT`, before it is printed
  or written to a log file: a newline in student text can never start a line that reads as
  one of nbgrader's (``[AutogradeApp | INFO] ...``);
- **the kernel's own stdout and stderr** (file descriptors 1 and 2, which ipykernel does not
  capture: ``os.write(2, ...)``, C libraries, forked children, Python's fatal-error dumps).
  :class:`KernelOutputPump` reads them from a pipe and logs each line quoted
  (``kernel output: '...'``, Python's ``repr``), cleaned, at most :data:`MAX_FORWARDED`
  characters per kernel. Before, a kernel that wrote ``[AutogradeApp | INFO] ... all good``
  put ``[AutogradeApp | INFO] kernel: [AutogradeApp | INFO] ... all good`` on the terminal.
"""

from __future__ import annotations

import logging
import os
import threading

from autograder.notebooks import terminal_safe

#: Characters of a kernel's own stdout/stderr forwarded to the log (the rest is read and dropped).
MAX_FORWARDED = 64 * 1024
#: What starts every line of a log message after its first (and every line of a traceback).
INDENT = "    | "


def one_entry(text: str) -> str:
    """``text`` cleaned (:func:`terminal_safe`), every line after the first behind
    :data:`INDENT`."""
    return f"\n{INDENT}".join(terminal_safe(text).split("\n"))


class TerminalSafeFilter(logging.Filter):
    """A logging filter that replaces a record's message (and exception text) by its
    :func:`one_entry` form, once per record however many handlers it reaches."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "bn_terminal_safe", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: show what there is
            message = f"{record.msg!r} % {record.args!r}"
        record.msg, record.args = one_entry(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:  # logging puts it on the lines after the message
            record.exc_text = INDENT + one_entry(record.exc_text)
        record.bn_terminal_safe = True
        return True


def protect_log(log: logging.Logger | logging.LoggerAdapter) -> None:
    """Add :class:`TerminalSafeFilter` (once) to every handler ``log``'s records reach."""
    logger = log.logger if isinstance(log, logging.LoggerAdapter) else log
    while logger is not None:
        for handler in logger.handlers:
            if not any(isinstance(f, TerminalSafeFilter) for f in handler.filters):
                handler.addFilter(TerminalSafeFilter())
        logger = logger.parent if logger.propagate else None


class KernelOutputPump:
    """Reads a kernel's stdout/stderr pipe in a daemon thread and logs it, cleaned and bounded.

    Parameters
    ----------
    fd : int
        The read end of the pipe; closed when the kernel side closes it.
    log : logging.Logger
        Where the lines go (``kernel: <line>``, INFO).
    """

    def __init__(self, fd: int, log: logging.Logger):
        self.fd, self.log, self.forwarded = fd, log, 0
        self.thread = threading.Thread(target=self._run, daemon=True, name="kernel-output")
        self.thread.start()

    def _run(self) -> None:
        pending = b""
        try:
            while chunk := os.read(self.fd, 65536):
                if self.forwarded >= MAX_FORWARDED:
                    continue  # keep draining, so the kernel never blocks on a full pipe
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._emit(line)
                if len(pending) > 4096:
                    self._emit(pending)
                    pending = b""
            if pending:
                self._emit(pending)
        except OSError:
            pass
        finally:
            os.close(self.fd)

    def _emit(self, line: bytes) -> None:
        room = MAX_FORWARDED - self.forwarded
        if room <= 0:
            return
        text = terminal_safe(line.decode("utf-8", "replace"))[:room]
        self.forwarded += len(text)
        self.log.info("kernel output: %r", text)
        if self.forwarded >= MAX_FORWARDED:
            self.log.info("kernel output: ... (more dropped)")
