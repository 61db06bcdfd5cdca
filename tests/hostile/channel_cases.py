"""Hostile kernels against the channels between the kernel and the grader (issue 19, section 2).

Each case is the answer cell of the throw-away assignment ``99_sandbox`` (built by
``tests/test_sandbox.py``: ``f`` graded by ``check_f_at_1`` and ``check_f_at_2``, one point
each). Every answer defines the same partly wrong ``f`` (:data:`HONEST`: right at 1, wrong at 2,
so honest code scores exactly 1 of 2) and adds one trick that speaks to the grader through the
kernel's own sockets (``get_ipython().kernel``), as a determined student can:

- ``iopub_frames``: 3 messages of 20 frames x 20 MiB each on iopub (the old cap was per frame);
- ``shell_big``: 4 messages of 300 MB on the shell channel (which had no cap at all);
- ``stdin_flood``, ``control_flood``: 40 messages of 24 MiB on channels the grader never reads,
  which queued in its memory;
- ``big_reply``: the reply to the answer cell's execute request carries an 80 MB page payload;
- ``junk_shell``: ``f`` fakes the kernel's "idle" for the grader's request, never returns, and
  sends a junk shell message every second (the grader's wait for the reply never ended);
- ``log_forgery``: text on the kernel's stderr and a message type that read as lines of
  nbgrader's own log.

``score`` is what the case must score (of 2): never more than :data:`HONEST` without the trick
(1); exactly 1 when the trick must not cost the student the rest of the notebook. ``flags`` are
the flag kinds its autograded notebook must carry.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Right at 1, wrong at 2: honest code scores 1 of 2 (check_f_at_1 passes, check_f_at_2 fails).
HONEST = "def f(x):\n    return 2 if x == 1 else 0\n"
#: Correct: 2 of 2 (the student graded after the hostile ones).
GOOD = "def f(x):\n    return x + 1\n"
#: What forged log lines carry, to find them in the grader's log.
FORGED = "FORGED-all-good"

_KERNEL = "k = get_ipython().kernel\nparent = k.get_parent('shell')\n"


@dataclass(frozen=True)
class Case:
    answer: str
    score: float = 1
    flags: tuple[str, ...] = ()


CASES: dict[str, Case] = {
    "iopub_frames": Case(
        _KERNEL + "chunk = b'x' * (20 * 2**20)\n"
        "for _ in range(3):\n"
        "    k.session.send(k.iopub_socket, 'display_data', {'data': {'text/plain': 'hi'}, "
        "'metadata': {}}, parent=parent, buffers=[chunk] * 20)\n" + HONEST,
        flags=("refused-output",),
    ),
    "shell_big": Case(
        _KERNEL + "big = b'y' * (300 * 10**6)\n"
        "for _ in range(4):\n"
        "    k.session.send(k.shell_stream, 'execute_reply', {'status': 'ok'}, parent={},\n"
        "                   ident=k._parent_ident['shell'], buffers=[big])\n"
        + HONEST,
        flags=("refused-output",),
    ),
    "stdin_flood": Case(
        _KERNEL + "chunk = b'z' * (24 * 2**20)\n"
        "for _ in range(40):\n"
        "    k.session.send(k.stdin_socket, 'input_request', {'prompt': ''}, parent=parent,\n"
        "                   ident=k._parent_ident['shell'], buffers=[chunk])\n"
        "import time\ntime.sleep(3)  # the grader receives while the notebook still runs\n"
        + HONEST,
    ),
    "control_flood": Case(
        _KERNEL + "chunk = b'c' * (24 * 2**20)\n"
        "for _ in range(40):\n"
        "    k.session.send(k.control_stream, 'debug_reply', {}, parent={},\n"
        "                   ident=k._parent_ident['shell'], buffers=[chunk])\n"
        "import time\ntime.sleep(3)\n" + HONEST,
    ),
    "big_reply": Case(
        "get_ipython().payload_manager.write_payload(\n"
        "    {'source': 'page', 'data': {'text/plain': 'p' * (80 * 10**6)}, 'start': 0})\n"
        + HONEST,
        flags=("refused-output",),
    ),
    "junk_shell": Case(
        "import time\n\n"
        "def f(x):\n"
        "    k = get_ipython().kernel\n"
        "    parent, ident = k.get_parent('shell'), k._parent_ident['shell']\n"
        "    k.session.send(k.iopub_socket, 'status', {'execution_state': 'idle'}, parent=parent)\n"
        "    while True:  # never returns, so the real reply never comes\n"
        "        time.sleep(1)\n"
        "        k.session.send(k.shell_stream, 'junk', {}, parent={}, ident=ident)\n",
        score=0,
    ),
    "log_forgery": Case(
        _KERNEL + "import os\n"
        f"os.write(2, b'\\n[AutogradeApp | INFO] {FORGED} (stderr)\\n')\n"
        f"os.write(1, b'[AutogradeApp | WARNING] {FORGED} (stdout)\\r\\n')\n"
        f"k.session.send(k.iopub_socket, 'x\\n[AutogradeApp | INFO] {FORGED} (msg_type)', {{}}, "
        "parent=parent)\n" + HONEST,
    ),
}
