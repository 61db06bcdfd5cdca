"""What the grader relies on in nbgrader, nbclient, nbconvert and jupyter_client, in one place.

The grader overrides or patches private methods and module attributes of these packages (they
offer no other way in for what it needs). Each is listed here with the signature it is written
against, who relies on it, and where the upstream code must still call it, so that a version
bump that renames, removes or re-signs one fails here, naming the code of ours to change,
instead of somewhere deep in a grading run (or, worse, not at all: an override nobody calls
any more is a sandbox or a limit that silently stopped applying).

Supported seams, and why they are not used:

- jupyter_client's kernel provisioners (``KernelProvisionerBase.pre_launch``,
  ``launch_kernel``): see the comment on ``SandboxedKernelManager`` in
  ``autograder/kernel/sandbox.py``;
- nbclient's ``on_cell_*`` hooks: see the comments on ``SandboxedExecute`` in
  ``autograder/kernel/execute.py`` and on ``OutputLimits._update_display_id`` in
  ``autograder/kernel/output_limits.py``.
"""

from __future__ import annotations

import importlib
import inspect

import pytest

#: (module, qualified name, parameter names in order, who relies on it)
SIGNATURES = [
    # nbgrader 0.9.6
    ("nbgrader.preprocessors", "SaveAutoGrades._add_score", ["self", "cell", "resources"],
     "TrustedSaveAutoGrades (kernel/execute.py) scores test cells from trusted metadata"),
    ("nbgrader.preprocessors", "Execute.preprocess", ["self", "nb", "resources", "km"],
     "SandboxedExecute.preprocess (kernel/execute.py)"),
    ("nbgrader.preprocessors", "Execute.preprocess_cell", ["self", "cell", "resources", "index"],
     "SandboxedExecute.preprocess_cell (kernel/execute.py)"),
    ("nbgrader.preprocessors", "ClearSolutions._replace_solution_region",
     ["self", "cell", "language"], "NamedStubs (tools/stubs.py)"),
    ("nbgrader.converters", "Autograde.init_notebooks", ["self"],
     "SanitizedAutograde.init_notebooks (kernel/submission.py)"),
    ("nbgrader.converters", "Autograde.convert_single_notebook", ["self", "notebook_filename"],
     "SanitizedAutograde.convert_single_notebook (kernel/submission.py)"),
    ("nbgrader.converters", "Autograde.start", ["self"], "SanitizedAutograde.start"),
    ("nbgrader.converters", "Autograde._format_source", ["self", "assignment_id", "student_id",
                                                         "escape"],
     "SanitizedAutograde.init_notebooks matches staged folders"),
    ("nbgrader.converters", "Autograde._format_dest", ["self", "assignment_id", "student_id",
                                                       "escape"],
     "SanitizedAutograde.convert_single_notebook finds the autograded notebook"),
    ("nbgrader.utils", "capture_log", ["app", "fmt"], "the runner's worker (tools/runner)"),
    ("nbgrader.api", "Gradebook.__init__", ["self", "db_url", "course_id", "authenticator"],
     "share_engines (tools/runner/engines.py) replaces what it calls"),
    # nbclient 0.11
    ("nbclient", "NotebookClient._async_handle_timeout", ["self", "timeout", "cell"],
     "SandboxedExecute._async_handle_timeout flags the cell (kernel/execute.py)"),
    ("nbclient", "NotebookClient._update_display_id", ["self", "display_id", "msg"],
     "OutputLimits._update_display_id caps display updates (kernel/output_limits.py)"),
    ("nbclient", "NotebookClient.output", ["self", "outs", "msg", "display_id", "cell_index"],
     "OutputLimits.output"),
    ("nbclient", "NotebookClient.process_message", ["self", "msg", "cell", "cell_index"],
     "OutputLimits.process_message"),
    ("nbclient", "NotebookClient.handle_comm_msg", ["self", "outs", "msg", "cell_index"],
     "OutputLimits.handle_comm_msg"),
    ("nbclient", "NotebookClient.create_kernel_manager", ["self"],
     "SandboxedExecute.create_kernel_manager"),
    # nbconvert 7
    ("nbconvert.preprocessors.sanitize", "SanitizeHTML.sanitize_html_tags",
     ["self", "html_str"], "SanitizeStudentHTML (kernel/sanitize_html.py)"),
    ("nbconvert.preprocessors.sanitize", "SanitizeHTML.sanitize_code_outputs",
     ["self", "outputs"], "SanitizeStudentHTML.preprocess_cell"),
    # jupyter_client 8
    ("jupyter_client.manager", "AsyncKernelManager._async_pre_start_kernel",
     ["self", "transport_encryption", "kw"],
     "SandboxedKernelManager wraps the kernel command in bwrap (kernel/sandbox.py); it takes "
     "**kw and passes transport_encryption on in it"),
    ("jupyter_client.manager", "AsyncKernelManager._async_launch_kernel",
     ["self", "kernel_cmd", "kw"], "SandboxedKernelManager pipes the kernel's fds 1 and 2"),
    ("jupyter_client.manager", "AsyncKernelManager._async_cleanup_resources",
     ["self", "restart"], "SandboxedKernelManager removes the run directory and relay"),
    ("jupyter_client.manager", "AsyncKernelManager.format_kernel_cmd",
     ["self", "extra_arguments"], "SandboxedKernelManager runs python -P -m the launcher"),
    ("jupyter_client.connect", "ConnectionFileMixin._make_url", ["self", "channel"],
     "BoundedChannels._make_url puts the relay in front of every socket (kernel/channels.py)"),
    ("jupyter_client.asynchronous.client", "AsyncKernelClient.start_channels",
     ["self", "shell", "iopub", "stdin", "hb", "control"],
     "LimitedKernelClient.start_channels leaves the heartbeat off"),
    ("jupyter_client.channels", "AsyncZMQSocketChannel.get_msg", ["self", "timeout"],
     "LimitedChannel.get_msg counts what it receives and skips invalid messages"),
    ("jupyter_client.session", "Session.sign", ["self", "msg_list"],
     "Relay signs the error reply that replaces a refused shell message (kernel/relay.py)"),
    ("jupyter_client.session", "Session.feed_identities", ["self", "msg_list", "copy"],
     "LimitedChannel._decode"),
    ("jupyter_client.session", "Session.deserialize", ["self", "msg_list", "content", "copy"],
     "LimitedChannel._decode"),
]

#: (module, qualified name of an upstream function, text it must still contain, why): upstream
#: code that must still call an override of ours, or use a name we replace.
CALLS = [
    ("nbgrader.preprocessors.saveautogrades", "SaveAutoGrades.preprocess_cell",
     "self._add_score(", "TrustedSaveAutoGrades"),
    ("nbgrader.preprocessors.clearsolutions", "ClearSolutions.preprocess_cell",
     "self._replace_solution_region(", "NamedStubs"),
    ("nbgrader.converters.base", "BaseConverter.init_notebooks", "self._format_source(",
     "SanitizedAutograde reads self.assignments as nbgrader fills it"),
    ("nbgrader.converters.base", "BaseConverter.start", "self.init_notebooks()",
     "SanitizedAutograde stages submissions in init_notebooks"),
    ("nbgrader.apps.autogradeapp", "AutogradeApp.start", "Autograde(",
     "the Autograde swap (kernel/submission.py install): looked up in this module at start"),
    ("nbgrader.api", "Gradebook.__init__", "create_engine(", "share_engines"),
    ("nbgrader.api", "Gradebook.__init__", "inspect(self.engine).get_table_names()",
     "share_engines"),
    ("nbgrader.api", "Gradebook.__init__", "Base.metadata.create_all(bind=self.engine)",
     "share_engines"),
    ("nbgrader.api", "Gradebook.__init__", "get_alembic_version()",
     "the self-check's in-process alembic head (tools/selfcheck.py)"),
    ("nbclient.client", "NotebookClient.process_message", "self._update_display_id(",
     "OutputLimits._update_display_id"),
    ("nbclient.client", "NotebookClient.process_message", "self.output(", "OutputLimits.output"),
    ("nbclient.client", "NotebookClient.process_message", "self.handle_comm_msg(",
     "OutputLimits.handle_comm_msg"),
    ("nbclient.client", "NotebookClient._async_poll_for_reply", "self._async_handle_timeout(",
     "SandboxedExecute._async_handle_timeout"),
    ("nbclient.client", "NotebookClient.reset_execution_trackers", "self._display_id_map = {}",
     "OutputLimits reads _display_id_map"),
    ("jupyter_client.manager", "KernelManager._async_start_kernel",
     "self._async_pre_start_kernel(", "SandboxedKernelManager"),
    ("jupyter_client.manager", "KernelManager._async_start_kernel",
     "self._async_launch_kernel(", "SandboxedKernelManager"),
    ("jupyter_client.manager", "KernelManager._async_shutdown_kernel",
     "self._async_cleanup_resources(", "SandboxedKernelManager"),
    ("jupyter_client.manager", "KernelManager._connect_control_socket",
     'self._create_connected_socket("control")', "BoundedChannels on the manager"),
    ("jupyter_client.connect", "ConnectionFileMixin._create_connected_socket",
     "self._make_url(channel)", "BoundedChannels: every channel socket"),
    ("jupyter_client.client", "KernelClient.hb_channel", 'self._make_url("hb")',
     "BoundedChannels: the heartbeat socket too"),
    ("jupyter_client.provisioning.local_provisioner", "LocalProvisioner.launch_kernel",
     "self.process = launch_kernel(", "SandboxedKernelManager.exit_reason reads it"),
]

#: Module attributes the grader replaces: (module, attribute path, who replaces it)
PATCHED = [
    ("nbgrader.apps.autogradeapp", "Autograde", "kernel/submission.py install()"),
    ("nbgrader.converters", "Autograde", "kernel/submission.py install()"),
    ("nbgrader.api", "create_engine", "tools/runner/engines.py share_engines()"),
    ("nbgrader.api", "inspect", "tools/runner/engines.py share_engines()"),
    ("nbgrader.api", "Base.metadata.create_all", "tools/runner/engines.py share_engines()"),
    ("nbgrader.api", "get_alembic_version", "tools/selfcheck.py run_nbgrader()"),
]


def _resolve(module: str, name: str):
    obj = importlib.import_module(module)
    for part in name.split("."):
        found = inspect.getattr_static(obj, part)
        obj = found.fget if isinstance(found, property) else getattr(obj, part)
    return obj


@pytest.mark.parametrize(("module", "name", "params", "user"), SIGNATURES,
                         ids=[f"{m}.{n}" for m, n, _, _ in SIGNATURES])
def test_an_overridden_upstream_method_keeps_its_signature(module, name, params, user):
    found = _resolve(module, name)
    assert callable(found), f"{module}.{name} is gone; {user} relies on it"
    got = list(inspect.signature(found).parameters)
    assert got == params, f"{module}.{name}{got}: {user} is written for {params}"


@pytest.mark.parametrize(("module", "name", "text", "user"), CALLS,
                         ids=[f"{n}:{t[:30]}" for _, n, t, _ in CALLS])
def test_upstream_still_calls_what_the_grader_overrides(module, name, text, user):
    source = inspect.getsource(_resolve(module, name))
    assert text in source, f"{module}.{name} no longer does {text!r}; {user} relies on it"


@pytest.mark.parametrize(("module", "path", "user"), PATCHED,
                         ids=[f"{m}.{p}" for m, p, _ in PATCHED])
def test_a_patched_module_attribute_is_still_there(module, path, user):
    assert callable(_resolve(module, path)), f"{module}.{path} is gone; {user} replaces it"


def test_the_traits_and_constants_relied_on_are_there():
    from jupyter_client import session
    from jupyter_client.asynchronous.client import AsyncKernelClient
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager
    from nbconvert.preprocessors.sanitize import SanitizeHTML
    from nbgrader.preprocessors import Execute

    from autograder.kernel import relay

    assert session.DELIM == relay.DELIM  # the relay finds a message's header after it
    for trait in ("shell_channel_class", "iopub_channel_class", "stdin_channel_class",
                  "control_channel_class"):
        assert AsyncKernelClient.class_traits().get(trait) is not None, trait
    for trait in ("client_class", "client_factory", "transport", "ip", "connection_file"):
        assert AsyncKernelManager.class_traits().get(trait) is not None, trait
    assert "interrupt_mode" in KernelSpec.class_traits()  # the sandbox interrupts by message
    assert {"error_on_timeout", "kernel_manager_class", "allow_errors"} <= set(
        Execute.class_traits())
    assert {"tags", "attributes"} <= set(SanitizeHTML.class_traits())


def test_zeromq_speaks_the_wire_format_the_relay_reads():
    """The relay reads ZMTP 3 (libzmq >= 4.0 speaks 3.0, >= 4.2 3.1) with the NULL mechanism."""
    import zmq

    assert zmq.zmq_version_info() >= (4, 2)
