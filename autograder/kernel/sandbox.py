"""A bubblewrap sandbox for the kernels that run student code under ``nbgrader autograde``.

nbgrader starts one Jupyter kernel per notebook through nbclient's ``kernel_manager_class``.
:class:`SandboxedKernelManager` is that class (``nbgrader_config.py`` selects it): it starts the
kernel inside `bubblewrap <https://github.com/containers/bubblewrap>`_ (``bwrap``, Debian package
``bubblewrap``), the unprivileged sandboxing tool that Flatpak uses, with

- no network: a private network namespace holding only a loopback interface
  (``--unshare-net``). The kernel talks to nbgrader over ZeroMQ ``ipc`` sockets, which are unix
  socket files in a private run directory bound into the sandbox, instead of TCP;
- a private filesystem view: a fresh root with the system (``/usr``), the Python installation,
  the course's ``course/``, ``data/`` and the kernel's own files of ``autograder/`` read-only; a private ``/tmp``; and, as
  the working directory, a private scratch copy of the submission's folder
  (``autograded/<student>/<assignment>/``, copied into the kernel's run directory with regular
  files only, bound at that folder's path; :mod:`autograder.kernel.scratch`). The real folder,
  which nbgrader writes the graded notebook into, is never visible, so nothing the kernel
  creates (symlinks, FIFOs, deep trees) is ever where nbgrader reads or writes; the scratch copy
  is removed, whatever it holds, when the kernel's resources are cleaned up.
  ``source/``, ``release/``, ``submitted/``, ``autograded/``, ``feedback/``, ``gradebook.db``,
  ``nbgrader_config.py``, other students' folders and the instructor's home are not there;
- resource limits set with ``prlimit`` (util-linux) on the kernel process: address space
  (memory), CPU time, number of processes, size of any file written, no core dumps;
- its own PID, IPC and UTS namespaces, a new session (no controlling terminal), no capabilities,
  ``no_new_privs``, an unprivileged uid, and death with its parent (``--die-with-parent``).

``RLIMIT_NPROC`` is counted per (user namespace, real uid) and is not enforced for the root
user, so the kernel never runs as root:

- when the grader is a normal user, ``bwrap --unshare-user`` keeps that uid in a fresh user
  namespace, which also gives each kernel its own process count;
- when the grader is root (containers, CI), this module creates the user namespace itself, with
  uid/gid 0 and :attr:`~SandboxedKernelManager.sandbox_uid` (65534, ``nobody``) mapped to
  themselves, lets bwrap set the sandbox up as root in it (``--userns``), and drops to
  ``nobody`` with ``setpriv`` before the kernel starts. The run directory (with the scratch
  copy) is handed to that uid; nothing of the course is.

Opting out: ``BN_UNSANDBOXED=1`` runs the same kernel command without the sandbox (over loopback
TCP), with a warning on stderr and a ``sandbox-off`` flag in each autograded notebook.
Without it, grading refuses to start when the sandbox cannot (:func:`check_sandbox`). The one
exception is a learner's own Validate (:func:`~autograder.kernel.availability.validating_own_notebook`):
their own notebook on their own machine runs without the sandbox, said in one log line.

Sandboxed or not, a kernel keeps its libraries' caches and settings (matplotlib, fontconfig,
IPython) in folders of its own (:func:`~autograder.kernel.bwrap.private_dirs_env`), seeded with
the grader's matplotlib font cache, which is built before the first kernel starts
(:func:`~autograder.kernel.bwrap.matplotlib_font_caches`): a library building its cache is never
recorded against the student.

The command line is built in :mod:`autograder.kernel.bwrap`; whether the sandbox can start, and
``BN_UNSANDBOXED``, in :mod:`autograder.kernel.availability`. Their public names are also
importable from here.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import typing as t
from pathlib import Path

from jupyter_client.localinterfaces import localhost
from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, DottedObjectName, Integer, List, Type, Unicode, default

from autograder.course_dir import ROOT, is_inside
from autograder.kernel.availability import (
    UNSANDBOXED_ENV,
    VALIDATE_UNSANDBOXED_NOTE,
    RootUserNamespace,
    SandboxUnavailableError,
    check_sandbox,
    chown_tree,
    describe_exit,
    unsandboxed_requested,
    validating_own_notebook,
    warn_unsandboxed,
)
from autograder.kernel.bwrap import (
    COURSE_READABLE,
    ENV_PASSTHROUGH,
    KERNEL_FILES,
    THREAD_VARS,
    Limits,
    bwrap_command,
    holds_hidden_half,
    matplotlib_font_caches,
    private_dirs_env,
    python_paths,
    sandbox_env,
)
from autograder.kernel.channels import BoundedChannels
from autograder.kernel.scratch import copy_regular_tree, remove_tree
from autograder.kernel.terminal import KernelOutputPump

__all__ = [
    "COURSE_READABLE", "ENV_PASSTHROUGH", "KERNEL_FILES", "THREAD_VARS", "UNSANDBOXED_ENV",
    "Limits", "SandboxUnavailableError", "SandboxedKernelManager", "bwrap_command",
    "check_sandbox", "describe_exit", "holds_hidden_half", "matplotlib_font_caches",
    "python_paths", "sandbox_env", "unsandboxed_requested", "warn_unsandboxed",
]


class SandboxedKernelManager(BoundedChannels, AsyncKernelManager):
    """An ``AsyncKernelManager`` whose kernel runs in the bubblewrap sandbox.

    Select it in ``nbgrader_config.py`` (``c.Execute.kernel_manager_class``) and configure it
    with ``c.SandboxedKernelManager.<trait>``. With ``BN_UNSANDBOXED=1`` it starts the same
    kernel command without the sandbox and warns on stderr.

    The kernel command is ``python -m autograder.kernel.launcher -f CONNECTION_FILE`` when the course
    has ``autograder/kernel.py`` (the trusted preamble), otherwise
    ``python -m ipykernel_launcher -f CONNECTION_FILE``; ``python`` is the grader's own
    interpreter.
    """

    # Why not a kernel provisioner (jupyter_client's supported seam for how a kernel process
    # starts: KernelProvisionerBase.pre_launch/launch_kernel/cleanup)? A provisioner is chosen
    # per kernelspec (metadata.kernel_provisioner) or by KernelProvisionerFactory's default,
    # through the "jupyter_client.kernel_provisioners" entry points: the sandbox would hang on
    # package metadata and on whichever kernelspec a notebook names, not on the one class that
    # nbgrader_config.py names and autograder.kernel.trusted_config checks before grading. The
    # manager also keeps what a provisioner does not own: the run directory reused across a
    # restart, the ipc connection file in it, the client class and the relay of its control
    # socket. The private methods overridden here are pinned in tests/test_upstream_contract.py.
    #
    # its sockets, and the manager's own control socket (BoundedChannels), go through a relay
    # that refuses oversized messages, so the grader's memory stays bounded
    # (autograder.kernel.channels)
    client_class = DottedObjectName("autograder.kernel.channels.LimitedKernelClient",
                                    config=True)
    client_factory = Type("autograder.kernel.channels.LimitedKernelClient",
                          klass="jupyter_client.asynchronous.AsyncKernelClient", config=True)
    bwrap_path = Unicode("bwrap", help="The bubblewrap executable (name on PATH or path).").tag(
        config=True
    )
    memory_limit = Integer(Limits.memory_bytes, help="Address-space limit in bytes.").tag(
        config=True
    )
    cpu_limit = Integer(Limits.cpu_seconds, help="CPU-time limit in seconds.").tag(config=True)
    process_limit = Integer(Limits.processes, help="Processes + threads limit.").tag(config=True)
    file_size_limit = Integer(Limits.file_bytes, help="Largest file written, bytes.").tag(
        config=True
    )
    tmp_size = Integer(Limits.tmp_bytes, help="Size of the private /tmp, bytes.").tag(config=True)
    sandbox_uid = Integer(65534, help="uid/gid of the kernel when the grader is root.").tag(
        config=True
    )
    course_root = Unicode(help="The course directory (default: CourseDirectory.root).").tag(
        config=True
    )
    course_readable = List(
        Unicode(), default_value=list(COURSE_READABLE),
        help="Course sub-folders the kernel may read.",
    ).tag(config=True)
    readonly_paths = List(
        Unicode(), help="More folders the kernel may read (absolute paths)."
    ).tag(config=True)
    kernel_module = Unicode(help="Module run with `python -m` as the kernel.").tag(config=True)
    unsandboxed = Bool(help=f"Run without the sandbox (default: from ${UNSANDBOXED_ENV}).").tag(
        config=True
    )

    @default("unsandboxed")
    def _default_unsandboxed(self) -> bool:
        return unsandboxed_requested()

    @default("course_root")
    def _default_course_root(self) -> str:
        configured = self.config.get("CourseDirectory", {}).get("root")
        return str(Path(configured).resolve()) if configured else str(ROOT)

    @default("kernel_module")
    def _default_kernel_module(self) -> str:
        if (Path(self.course_root) / "autograder" / "kernel" / "launcher.py").is_file():
            return "autograder.kernel.launcher"
        return "ipykernel_launcher"

    @default("transport")
    def _default_transport(self) -> str:
        return "tcp" if self.unsandboxed else "ipc"

    def __init__(self, **kwargs: t.Any):
        super().__init__(**kwargs)
        self._run_dir: Path | None = None
        self._userns: RootUserNamespace | None = None
        self._open_fds: list[int] = []  # passed to bwrap, closed once it has started
        self._validating = False  # unsandboxed for a learner's own Validate (see check)

    @property
    def limits(self) -> Limits:
        """The :class:`Limits` of this manager's kernels, from its traits."""
        return Limits(
            memory_bytes=self.memory_limit, cpu_seconds=self.cpu_limit,
            processes=self.process_limit, file_bytes=self.file_size_limit,
            tmp_bytes=self.tmp_size,
        )

    def check(self, cwd: Path | None = None) -> None:
        """Raise :class:`SandboxUnavailableError` unless the sandbox can start (or is off).

        Parameters
        ----------
        cwd : Path, optional
            The folder the kernel is about to start in. When the sandbox cannot start and this
            is a learner validating their own notebook (:func:`validating_own_notebook`), the
            manager turns to running without it, says so in one log line, and does not raise.
        """
        if self.unsandboxed:
            if not self._validating:
                warn_unsandboxed()
            return
        try:
            check_sandbox(self.bwrap_path, self.sandbox_uid)
        except SandboxUnavailableError:
            if cwd is None or not validating_own_notebook(cwd, self.course_root):
                raise
            self._validating = True
            self.unsandboxed = True
            self.transport, self.ip = "tcp", localhost()  # no ipc sockets outside the sandbox
            self.log.warning("%s", VALIDATE_UNSANDBOXED_NOTE)

    def exit_reason(self) -> str:
        """Why the kernel process ended, in plain words (see :func:`describe_exit`)."""
        process = getattr(self.provisioner, "process", None)
        code = process.poll() if process is not None else None
        return describe_exit(code, self.limits)

    def _extra_readonly(self, environ: t.Mapping[str, str]) -> list[Path]:
        root = Path(self.course_root)
        extra = [Path(p) for p in self.readonly_paths]
        for entry in environ.get("PYTHONPATH", "").split(os.pathsep):
            p = Path(os.path.abspath(entry)) if entry else None
            # The course root itself is masked (only course_readable shows); a folder holding
            # the course would expose all of it.
            if p is None or is_inside(p, root) or is_inside(root, p) or not p.is_dir():
                continue
            # Another checkout of the course (the grader's own package on PYTHONPATH, a test's
            # source tree): binding it would show its reference, checks and source notebooks.
            if holds_hidden_half(p):
                self.log.debug("sandbox: not mounting PYTHONPATH entry %s (a course folder)", p)
                continue
            extra.append(p)
        return extra

    async def _async_pre_start_kernel(self, **kw: t.Any) -> tuple[list[str], dict[str, t.Any]]:
        self.check(Path(kw.get("cwd") or os.getcwd()))
        if self.unsandboxed:
            kernel_cmd, kw = await super()._async_pre_start_kernel(**kw)
            kw["env"] = self._unsandboxed_env(kw.get("env") or dict(os.environ))
            return kernel_cmd, kw
        spec = self.kernel_spec
        if spec is not None:
            # bwrap starts the kernel in a new session, out of reach of jupyter_client's
            # process-group SIGINT; ipykernel interrupts itself on an interrupt_request instead.
            spec.interrupt_mode = "message"
        if self._run_dir is None:  # a restart reuses the run directory and connection file
            tmp = tempfile.gettempdir()
            # unix socket paths are limited to 107 bytes
            self._run_dir = Path(tempfile.mkdtemp(prefix="bn-kernel-",
                                                  dir=tmp if len(tmp) < 60 else "/tmp"))
            self.connection_file = str(self._run_dir / "kernel.json")
            self.ip = str(self._run_dir / "ipc")
        cwd = Path(kw.get("cwd") or self._run_dir / "work").resolve()
        work = self._scratch(cwd)
        kw["cwd"] = str(work)
        kernel_cmd, kw = await super()._async_pre_start_kernel(**kw)
        try:
            return self._sandboxed(kernel_cmd, kw, cwd, work)
        except BaseException:
            self._release()
            raise

    def _unsandboxed_env(self, environ: t.Mapping[str, str]) -> dict[str, str]:
        """The environment of a kernel without the sandbox: the grader's, with the libraries'
        folders of :func:`private_dirs_env` in a private temporary folder (removed with the
        kernel), whose matplotlib folder holds a copy of the grader's font cache."""
        if self._run_dir is None:  # a restart keeps the folder
            # below /tmp where it exists: the guard counts writes there as the kernel's own
            tmp = "/tmp" if os.path.isdir("/tmp") else None
            self._run_dir = Path(tempfile.mkdtemp(prefix="bn-kernel-", dir=tmp))
        env = {**environ, **private_dirs_env(self._run_dir)}
        # as in the sandbox: no bytecode written beside the course's modules (the scratch
        # course's course/__pycache__), a write the guard would charge to the student's import
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        fonts = Path(env["MPLCONFIGDIR"])
        fonts.mkdir(exist_ok=True)
        for font_cache in matplotlib_font_caches():
            if not (fonts / font_cache.name).exists():
                shutil.copyfile(font_cache, fonts / font_cache.name)
        return env

    def _scratch(self, cwd: Path) -> Path:
        """The kernel's private copy of ``cwd`` (``<run dir>/work``), made on first start.

        The kernel works there, seen at ``cwd``'s path inside the sandbox, so nothing it creates
        (symlinks, FIFOs, deep trees) is ever in the folder nbgrader writes the graded notebook
        into (:mod:`autograder.kernel.scratch`); a restart keeps the copy.
        """
        assert self._run_dir is not None
        work = self._run_dir / "work"
        if not work.exists():
            if cwd.is_dir() and cwd != work:
                copy_regular_tree(cwd, work)
            else:
                work.mkdir()
        return work

    def _sandboxed(self, kernel_cmd: list[str], kw: dict[str, t.Any],
                   cwd: Path, work: Path) -> tuple[list[str], dict[str, t.Any]]:
        """Wrap ``kernel_cmd`` in bwrap; set the kernel's environment and the fds to pass."""
        assert self._run_dir is not None
        environ = kw.get("env") or dict(os.environ)
        root = Path(self.course_root)
        if os.geteuid() == 0:
            uid = self.sandbox_uid
            chown_tree(self._run_dir, uid, uid)
            self._userns = RootUserNamespace(uid, uid)
            self._open_fds.append(self._userns.fd)
        env = sandbox_env(environ, root)
        seeds = {}
        for font_cache in matplotlib_font_caches():
            fd = os.open(font_cache, os.O_RDONLY | os.O_CLOEXEC)
            self._open_fds.append(fd)
            seeds[fd] = Path(env["MPLCONFIGDIR"]) / font_cache.name
        cmd = bwrap_command(
            kernel_cmd, cwd=cwd, run_dir=self._run_dir, course_root=root, limits=self.limits,
            bwrap=self.bwrap_path, extra_readonly=self._extra_readonly(environ),
            course_readable=self.course_readable,
            userns_fd=None if self._userns is None else self._userns.fd,
            sandbox_uid=self.sandbox_uid, sandbox_gid=self.sandbox_uid, seed_files=seeds,
            work=work,
        )
        kw["cwd"] = str(work)
        kw["env"] = env
        kw["pass_fds"] = tuple(self._open_fds)
        return cmd, kw

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        """``python [-P] -m <kernel_module> -f CONNECTION_FILE [extra arguments]``.

        ``-P`` (safe path) for the guarded kernel: Python then does not put the working
        directory, the student's folder, first on ``sys.path``, so a submission that ships its
        own ``autograder/`` package cannot replace the kernel or the checks. The guarded kernel
        adds the working directory back where IPython would, after the course's own path, so a
        notebook still imports the files of its folder (e.g. ``provided_batchnorm.py``).
        """
        safe = ["-P"] if self.kernel_module == "autograder.kernel.launcher" else []
        return [sys.executable, *safe, "-m", self.kernel_module, "-f",
                os.path.realpath(self.connection_file), *(extra_arguments or [])]

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: t.Any) -> None:
        # the kernel's own fds 1 and 2 go through a pipe to the log, cleaned of terminal
        # control sequences (autograder.kernel.terminal), never straight to the terminal
        pipe = os.pipe() if "stdout" not in kw and "stderr" not in kw else None
        if pipe is not None:
            kw["stdout"] = kw["stderr"] = pipe[1]
        try:
            await super()._async_launch_kernel(kernel_cmd, **kw)
        except BaseException:
            if pipe is not None:
                os.close(pipe[0])
            self._release()
            raise
        finally:
            if pipe is not None:
                os.close(pipe[1])
            self._close_fds()
        if pipe is not None:
            KernelOutputPump(pipe[0], self.log)

    def _close_fds(self) -> None:
        for fd in self._open_fds:
            os.close(fd)
        self._open_fds = []
        self._userns = None

    def _release(self) -> None:
        """Remove the run directory (scratch copy included, whatever the kernel left in it),
        close passed fds and the relay of the manager's control socket."""
        self._close_fds()
        self.close_relay()
        if self._run_dir is not None:
            run_dir, self._run_dir = self._run_dir, None
            try:
                remove_tree(run_dir)
            except OSError as exc:
                self.log.warning("could not remove the kernel's folder %s: %s", run_dir, exc)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            self._release()

    cleanup_resources = _async_cleanup_resources  # type: ignore[assignment]
    pre_start_kernel = _async_pre_start_kernel  # type: ignore[assignment]
    _launch_kernel = _async_launch_kernel  # type: ignore[assignment]

