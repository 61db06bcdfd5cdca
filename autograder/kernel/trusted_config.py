"""The grading configuration is trusted, or grading refuses.

The sandbox and the course's Execute step exist only because ``nbgrader_config.py`` names them:
a config that no longer loads, or no longer names them, would have nbgrader run student code
with its stock ``Execute`` and a plain kernel, with the instructor's rights. Grading therefore
checks the configuration it is about to use (:func:`check_config`) and refuses, never falling
back:

- ``python -m autograder grade`` (the runner) loads the course config itself, raising on any
  error in it (:func:`load_trusted_config`), then checks what nbgrader loaded;
- ``nbgrader autograde`` checks in :class:`autograder.kernel.submission.SanitizedAutograde`,
  which the config installs. A config file that fails to load at all is only logged by
  traitlets and never installs that class: plain ``nbgrader autograde`` then runs nbgrader's
  stock grading, which this module cannot stop; the runner refuses it.

What must hold: the kernel manager of the Execute step is (a subclass of)
:class:`~autograder.kernel.sandbox.SandboxedKernelManager`; the autograde preprocessors hold
:class:`~autograder.kernel.execute.SandboxedExecute` and no other Execute step, followed by
:class:`~autograder.kernel.sanitize_html.SanitizeStudentHTML`; the exporter is
:class:`~autograder.kernel.execute.SandboxCheckedExporter`; and ``unsandboxed`` is not switched on
in the config (the one way to grade without the sandbox is ``BN_UNSANDBOXED=1``, which flags
every notebook ``sandbox-off``).
"""

from __future__ import annotations

from pathlib import Path

from traitlets.utils.importstring import import_item

#: Config sections whose ``kernel_manager_class`` applies to SandboxedExecute, most specific first.
_KM_SECTIONS = ("SandboxedExecute", "Execute", "ExecutePreprocessor", "NotebookClient")


class UntrustedConfigError(ValueError):
    """The grading configuration cannot be loaded or no longer names the sandbox."""


def _resolve(value):
    return import_item(value) if isinstance(value, str) else value


def _is_subclass(value, base) -> bool:
    try:
        value = _resolve(value)
    except Exception:  # an import that fails names nothing we trust
        return False
    return isinstance(value, type) and issubclass(value, base)


def problems(config) -> list[str]:
    """What is wrong with a loaded grading configuration (empty when it is trusted).

    Parameters
    ----------
    config : traitlets.config.Config
        What nbgrader loaded (the app's ``config``) or :func:`autograder.course_dir.load_config`.

    Returns
    -------
    list of str
        One plain sentence per problem.
    """
    from nbgrader.preprocessors import Execute

    from autograder.kernel.execute import SandboxCheckedExporter, SandboxedExecute
    from autograder.kernel.sandbox import SandboxedKernelManager, unsandboxed_requested

    found = []
    manager = next((config[s]["kernel_manager_class"] for s in _KM_SECTIONS
                    if s in config and "kernel_manager_class" in config[s]), SandboxedKernelManager)
    if not _is_subclass(manager, SandboxedKernelManager):
        found.append(f"the Execute step's kernel manager is {manager!r}, not "
                     "autograder.kernel.sandbox.SandboxedKernelManager")
    steps = config.get("Autograde", {}).get("autograde_preprocessors")
    executes = [s for s in steps or [] if _is_subclass(s, Execute)]
    if not executes or not all(_is_subclass(s, SandboxedExecute) for s in executes):
        found.append("c.Autograde.autograde_preprocessors does not run "
                     "autograder.kernel.execute.SandboxedExecute (and no other Execute step)")
    from autograder.kernel.sanitize_html import SanitizeStudentHTML

    after = steps[steps.index(executes[0]) + 1:] if executes else []
    if not any(_is_subclass(s, SanitizeStudentHTML) for s in after):
        found.append("c.Autograde.autograde_preprocessors does not clean student HTML "
                     "(autograder.kernel.sanitize_html.SanitizeStudentHTML) after execution")
    from nbgrader.preprocessors import SaveAutoGrades

    from autograder.kernel.execute import TrustedSaveAutoGrades

    saves = [s for s in steps or [] if _is_subclass(s, SaveAutoGrades)]
    if not saves or not all(_is_subclass(s, TrustedSaveAutoGrades) for s in saves):
        found.append("c.Autograde.autograde_preprocessors does not score hidden test cells "
                     "with autograder.kernel.execute.TrustedSaveAutoGrades (and no other "
                     "SaveAutoGrades step)")
    exporter = config.get("Autograde", {}).get("exporter_class")
    if not _is_subclass(exporter, SandboxCheckedExporter):
        found.append("c.Autograde.exporter_class is not "
                     "autograder.kernel.execute.SandboxCheckedExporter")
    if config.get("SandboxedKernelManager", {}).get("unsandboxed") and not unsandboxed_requested():
        found.append("c.SandboxedKernelManager.unsandboxed is switched on in the config "
                     "(grade without the sandbox only with BN_UNSANDBOXED=1)")
    return found


def check_config(config) -> None:
    """Raise :class:`UntrustedConfigError` listing :func:`problems`, if there are any."""
    found = problems(config)
    if found:
        raise UntrustedConfigError(
            "Refusing to grade: the grading configuration no longer keeps student code in the "
            "sandbox: " + "; ".join(found) + ". Restore nbgrader_config.py (git checkout "
            "nbgrader_config.py).")


def load_trusted_config(root: Path):
    """The course's ``nbgrader_config.py``, loaded and checked.

    Raises
    ------
    UntrustedConfigError
        If the file is missing or raises anything while it loads, or :func:`check_config` fails.
    """
    from autograder.course_dir import load_config

    try:
        config = load_config(root)
    except Exception as exc:
        raise UntrustedConfigError(
            f"Refusing to grade: the course's nbgrader_config.py in {root} cannot be loaded "
            f"({type(exc).__name__}: {exc}); grading never falls back to nbgrader's defaults, "
            "which run student code without the sandbox.") from exc
    check_config(config)
    return config
