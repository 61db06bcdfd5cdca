"""nbgrader's Execute step, made to survive what student code does to its kernel.

Plain ``nbgrader autograde`` (0.9.6) loses the whole student when a kernel dies: nbclient raises
``DeadKernelError``, nbgrader logs it, deletes the student's autograded folder and goes on to
the next student (nbgrader issue #427). :class:`SandboxedExecute` replaces nbgrader's
``Execute`` in ``c.Autograde.autograde_preprocessors`` (``nbgrader_config.py``) and instead:

- **kernel died** (segfault, ``os._exit``, CPU-time limit, ...): the cell that was running gets
  an error output carrying ``Flag [kernel-died]: <reason>`` (signal name or exit code, and
  "memory limit" when the cell had hit a ``MemoryError``); every later code cell gets an error
  output saying it was not run. The notebook is saved and graded as usual: its test cells score
  0, and other notebooks and students are unaffected;
- **cell timeout** (``c.Execute.timeout``): the kernel is interrupted and the cell gets an error
  output with ``Flag [cell-timeout]: ...``; the following cells run normally. A kernel that does
  not stop when interrupted is killed, and the rest is handled as a dead kernel;
- **too much output**: the limits of :class:`~autograder.kernel.output_limits.OutputLimits`
  (per cell, per notebook, every display route, and the size of any one message the grader
  accepts), flagged ``output-truncated`` or ``refused-output``;
- **no sandbox** (``BN_UNSANDBOXED=1`` or a kernel manager that is not sandboxed): the first
  code cell gets ``Flag [sandbox-off]: ...`` on stdout.

Only test cells count toward the score (``nbgrader.utils.determine_grade``), so anything an
answer cell prints, on stdout or stderr, never changes a grade.

:class:`SandboxCheckedExporter` (``c.Autograde.exporter_class``) is created by nbgrader before any
submission is touched: when the sandbox cannot start it logs why and stops the run.
"""

from __future__ import annotations

import typing as t

from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbconvert.exporters import NotebookExporter
from nbformat.notebooknode import NotebookNode
from nbgrader.converters.base import NbGraderException
from nbgrader.preprocessors import Execute, SaveAutoGrades
from traitlets import List, Unicode, default

from autograder import notebooks
from autograder.kernel.output_limits import OutputLimits, stream_output
from autograder.kernel.output_limits import label as _label
from autograder.kernel.remote import KernelChannel, load_check_files, run_hidden_cell
from autograder.kernel.sandbox import (
    UNSANDBOXED_ENV,
    SandboxedKernelManager,
    SandboxUnavailableError,
    describe_exit,
)
from autograder.notebooks import flag_line


def error_output(ename: str, evalue: str, lines: list[str]) -> NotebookNode:
    """An nbformat error output; ``lines`` become its traceback (what feedback shows)."""
    return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=lines)


class SandboxedExecute(OutputLimits, Execute):
    """nbgrader's ``Execute``, with the sandboxed kernel and no student ever lost.

    Configure it like ``Execute`` (``c.Execute.timeout`` etc. apply); its own settings are
    ``c.SandboxedExecute.max_output_bytes`` and ``max_notebook_output_bytes`` (from
    :class:`~autograder.kernel.output_limits.OutputLimits`), and ``extra_check_files``.
    """

    extra_check_files = List(
        Unicode(), help="Python files with more hidden checks (their __all__), beside "
        "autograder.checks: a course's own checks for an assignment of its own."
    ).tag(config=True)

    @default("kernel_manager_class")
    def _default_kernel_manager_class(self) -> type:
        return SandboxedKernelManager

    @default("shutdown_kernel")
    def _default_shutdown_kernel(self) -> str:
        # Every output is in by then, and the kernel's folder is thrown away: nothing is lost by
        # killing it. nbclient's "graceful" shutdown costs 0.2 s per notebook (jupyter_client
        # polls for the exit) and, for one notebook in ten to twenty, 3.2 s more: the kernel
        # misses jupyter_client's 2.5 s wait and is terminated anyway.
        return "immediate"

    def __init__(self, **kw: t.Any):
        # nbgrader's Execute passes kernel_manager_class=AsyncKernelManager as a constructor
        # argument, which beats both config and defaults; nbclient re-reads the config when
        # preprocess() starts, so only the default needs restoring here.
        kw.setdefault("kernel_manager_class", SandboxedKernelManager)
        super().__init__(**kw)
        self._reset()

    def _reset(self) -> None:
        self._stopped: str | None = None
        self._reset_output_limits()
        self._sandboxed = True
        self._channel: KernelChannel | None = None

    # -- the notebook --------------------------------------------------------------------------

    def preprocess(self, nb: NotebookNode, resources: t.Any = None, km: t.Any = None):
        """Execute every code cell; a dead or hung kernel never raises out of here."""
        self._reset()
        notebooks.strip_trusted(nb)  # only this run may write the trusted metadata
        nb, resources = super().preprocess(nb, resources, km)
        if not self._sandboxed:
            reason = (f"graded without the sandbox ({UNSANDBOXED_ENV}=1 or an unsandboxed kernel "
                      "manager): student code had network access and the grader's permissions")
            notebooks.add_flag(nb, "sandbox-off", reason)
            first = next((c for c in nb.cells if c.cell_type == "code"), None)
            if first is not None:
                self._insert_first(first, None, stream_output(flag_line("sandbox-off", reason)
                                                              + "\n"))
        return nb, resources

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        # nbclient gives the manager no parent: its log (the kernel's own stdout and stderr,
        # autograder.kernel.terminal) would go to traitlets' global logger, which the runner's
        # workers keep at WARNING; this step's log is the grading app's
        km.log = self.log
        self._sandboxed = isinstance(km, SandboxedKernelManager) and not km.unsandboxed
        return km

    # -- one cell ------------------------------------------------------------------------------

    def preprocess_cell(self, cell: NotebookNode, resources: t.Any, index: int):
        """Execute one cell; record a dead kernel, a hung cell or dropped output in the cell."""
        if notebooks.is_test_cell(cell):
            return self._hidden_cell(cell, index), self.resources
        if cell.cell_type != "code" or not cell.source.strip():
            return super().preprocess_cell(cell, resources, index)
        if self._stopped is not None:
            cell.outputs = [error_output(
                "CellNotRun", f"not run: {self._stopped}",
                [f"This cell was not run: {self._stopped}."],
            )]
            return cell, self.resources
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            self._kernel_died(cell, index)
        except CellTimeoutError:
            self._kernel_hung(cell, index)
        finally:
            self._flag_truncation(cell, index)
        return cell, self.resources

    def _hidden_cell(self, cell: NotebookNode, index: int) -> NotebookNode:
        """Run a hidden test cell's check in this (trusted) process; see
        :mod:`autograder.kernel.remote`. The cell's outputs and trusted score come from here
        only; a cell the kernel cannot serve scores 0."""
        points = float(cell.metadata.get("nbgrader", {}).get("points", 0) or 0)
        if self._stopped is not None:
            cell.outputs = [error_output("CellNotRun", f"not run: {self._stopped}",
                                         [f"This cell was not run: {self._stopped}."])]
            notebooks.set_score(cell, 0.0, points)
            return cell
        if self._channel is None:
            self._channel = KernelChannel(self, float(self.timeout or 60))
        result = run_hidden_cell(cell.source, points, self._channel,
                                 extra=load_check_files(self.extra_check_files))
        cell.outputs = [stream_output(result.report)] if result.report else []
        cell.outputs.append(NotebookNode(
            output_type="execute_result", execution_count=None, metadata={},
            data={"text/plain": repr(result.score)}))
        notebooks.set_score(cell, result.score, points)
        if result.record is not None:
            notebooks.set_record(cell, result.record.to_dict())
        for kind, reason in result.flags:
            notebooks.add_flag(cell, kind, f"{_label(cell, index)}: {reason}")
        if result.stopped is not None:
            gone = result.stopped
            if gone.kind == "kernel-died" and isinstance(self.km, SandboxedKernelManager):
                reason = f"the kernel died in {_label(cell, index)}: {self.km.exit_reason()}"
            else:
                reason = f"{_label(cell, index)}: {gone.reason}"
            ename = "DeadKernelError" if gone.kind == "kernel-died" else "CellTimeoutError"
            cell.outputs.append(error_output(ename, flag_line(gone.kind, reason),
                                             [flag_line(gone.kind, reason)]))
            if gone.stopped:
                self._stopped = reason
                self.log.warning("%s", reason)
        return cell

    def _kernel_died(self, cell: NotebookNode, index: int) -> None:
        if isinstance(self.km, SandboxedKernelManager):
            reason = self.km.exit_reason()
        else:
            process = getattr(getattr(self.km, "provisioner", None), "process", None)
            reason = describe_exit(process.poll() if process is not None else None)
        if any(o.get("ename") == "MemoryError" or "MemoryError" in o.get("text", "")
               for o in cell.get("outputs", [])):
            reason += " after running out of memory (memory limit)"
        reason = f"the kernel died in {_label(cell, index)}: {reason}"
        notebooks.add_flag(cell, "kernel-died", reason)
        cell.outputs.append(error_output(
            "DeadKernelError", flag_line("kernel-died", reason),
            [flag_line("kernel-died", reason),
             "The kernel running this notebook stopped; the cells below were not run, so "
             "their tests score 0."],
        ))
        self._stopped = reason
        self.log.warning("%s", reason)

    def _kernel_hung(self, cell: NotebookNode, index: int) -> None:
        reason = (f"{_label(cell, index)} ran longer than {self.timeout} s and did not stop when "
                  "interrupted; the kernel was stopped")
        if self.km is not None:
            run_sync(self.km.shutdown_kernel)(now=True)
        notebooks.add_flag(cell, "cell-timeout", reason)
        cell.outputs.append(error_output(
            "CellTimeoutError", flag_line("cell-timeout", reason),
            [flag_line("cell-timeout", reason)],
        ))
        self._stopped = reason
        self.log.warning("%s", reason)

    async def _async_handle_timeout(self, timeout: int, cell: NotebookNode | None = None):
        # nbclient's on_cell_* hooks (on_cell_start, on_cell_execute, on_cell_complete,
        # on_cell_executed, on_cell_error) are not called for a timeout, nor for a dead kernel
        # (DeadKernelError), nor for hidden test cells (never sent to the kernel), so the flags
        # are set here and in preprocess_cell; nbgrader's Execute already uses on_cell_executed
        # as a method of its own. Pinned in tests/test_upstream_contract.py.
        label = "a cell" if cell is None else _label(cell, self.nb.cells.index(cell))
        reason = f"{label} ran longer than {timeout} s and was interrupted"
        if cell is not None:
            notebooks.add_flag(cell, "cell-timeout", reason)
        self.error_on_timeout = {
            "ename": "CellTimeoutError",
            "evalue": flag_line("cell-timeout", reason),
            "traceback": [flag_line("cell-timeout", reason)],
        }
        self.log.warning("%s", reason)
        return await super()._async_handle_timeout(timeout, cell)

class TrustedSaveAutoGrades(SaveAutoGrades):
    """nbgrader's ``SaveAutoGrades``, with a hidden test cell's score taken from the trusted side.

    nbgrader scores a test cell from its outputs (``nbgrader.utils.determine_grade``): no output
    at all counts as full marks. Here a test cell scores what :class:`SandboxedExecute` recorded
    in its trusted metadata (:func:`autograder.notebooks.trusted_score`), and 0 when it recorded
    nothing (a skipped or unexecuted cell). Other cells are scored as nbgrader does.
    """

    def _add_score(self, cell: NotebookNode, resources: t.Any) -> None:
        if not notebooks.is_test_cell(cell):
            return super()._add_score(cell, resources)
        grade = self.gradebook.find_grade(cell.metadata["nbgrader"]["grade_id"], self.notebook_id,
                                          self.assignment_id, self.student_id)
        score = notebooks.trusted_score(cell)
        grade.auto_score = 0.0 if score is None else min(score, float(grade.max_score))
        grade.needs_manual_grade = grade.manual_score is not None
        self.gradebook.db.commit()


class SandboxCheckedExporter(NotebookExporter):
    """nbgrader's notebook exporter, refusing to start when the sandbox cannot.

    ``c.Autograde.exporter_class`` selects it; nbgrader creates the exporter once, before it
    looks at any submission, so a missing bubblewrap stops ``nbgrader autograde`` with the
    reason (exit status 1) and nothing is touched. With ``BN_UNSANDBOXED=1`` it prints the
    warning instead.
    """

    def __init__(self, **kw: t.Any):
        super().__init__(**kw)
        try:
            SandboxedKernelManager(config=self.config).check()
        except SandboxUnavailableError as exc:
            self.log.error("%s", exc)
            raise NbGraderException(str(exc)) from exc


__all__ = ["SandboxCheckedExporter", "SandboxedExecute", "TrustedSaveAutoGrades", "error_output",
           "stream_output"]
