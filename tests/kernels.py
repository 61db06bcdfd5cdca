"""A plain kernel to run hidden checks against, with the trusted call path (tests, benchmarks).

:func:`kernel_channel` starts an ``ipykernel`` (unsandboxed: these tests are about the call path,
the sandbox has tests of its own) with the course on its path, so that the kernel side of the
call path, :mod:`autograder.kernel.shim`, is importable there, and yields a
:class:`autograder.kernel.remote.KernelChannel` to it plus a function that runs code in it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync

from autograder.course_dir import ROOT
from autograder.kernel.remote import KernelChannel


class _Client:
    """What KernelChannel needs of the execute preprocessor: a kernel client and manager."""

    def __init__(self, km, kc):
        self.km, self.kc = km, kc


async def _start(cwd: Path, bounded: bool = False):
    km = AsyncKernelManager(kernel_name="python3")
    if bounded:  # the grader's client: every socket through the relay (autograder.kernel.channels)
        from autograder.kernel.channels import LimitedKernelClient

        km.client_factory = LimitedKernelClient
    await km.start_kernel(env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=str(cwd))
    kc = km.client()
    kc.start_channels()
    await kc.wait_for_ready(timeout=60)
    return km, kc


async def _execute(kc, code: str) -> list[dict]:
    """Run ``code`` in the kernel and return its iopub outputs (stream, error, results)."""
    msg_id = kc.execute(code, store_history=False)
    outputs = []
    while True:
        msg = await kc.get_iopub_msg(timeout=120)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
        if msg["msg_type"] in ("stream", "error", "execute_result", "display_data"):
            outputs.append(msg["content"])
    while (await kc.get_shell_msg(timeout=120))["parent_header"].get("msg_id") != msg_id:
        pass
    return outputs


@contextlib.contextmanager
def kernel_channel(cwd: Path = ROOT, timeout: float = 60, bounded: bool = False
                   ) -> Iterator[tuple[KernelChannel, Callable[[str], list[dict]]]]:
    """``(channel, run)``: a channel for hidden checks, and ``run(code)`` to execute a cell;
    ``bounded``: with the grader's bounded kernel client instead of jupyter_client's."""
    km, kc = run_sync(_start)(Path(cwd), bounded)
    try:
        yield (KernelChannel(_Client(km, kc), timeout=timeout),
               lambda code: run_sync(_execute)(kc, code))
    finally:
        kc.stop_channels()
        run_sync(km.shutdown_kernel)(now=True)
