"""Hostile and broken submissions for the sandboxed kernel, each with its expected outcome.

Each case is the answer cell of a throw-away assignment (``99_sandbox``, built by
``tests/test_sandbox.py``) whose notebook is::

    answer (solution cell)       def f(x): return x + 1            <- replaced by ``answer``
    test_f (1 point)             check_f_at_1(f): f(1) == 2 (tests/conftest.py FIXTURE_CHECKS)
    test_g (1 point)             check_f_at_2(f): f(2) == 3

Tokens in ``answer`` that the test fills in: ``PORT`` (a TCP port a server on the grading host
listens on), ``HOST_SECRET`` (a file outside the course, readable by the grader),
``COURSE_ROOT`` (the course directory on the host), ``OTHER`` (another student's id).

``score`` is the expected total (of 2), ``flags`` the flag kinds (``Flag [kind]: ...``) that
must appear in the autograded notebook, ``reasons`` substrings that must appear in its outputs,
``absent`` substrings that must not (secrets that must stay unreadable).
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Text planted in files the student must not be able to read.
SECRET = "TOP-SECRET-7f3a"


@dataclass(frozen=True)
class Case:
    answer: str
    score: float
    reasons: tuple[str, ...]
    flags: tuple[str, ...] = ()
    absent: tuple[str, ...] = field(default=(SECRET,))


CASES: dict[str, Case] = {
    # -- runaway or crashing code -------------------------------------------------------------
    "infinite_loop": Case(
        "def f(x):\n    while True:\n        pass\n",
        score=0, reasons=("ran past the",), flags=("cell-timeout",),
    ),
    "sleep": Case(
        "import time\ntime.sleep(10**6)\n\ndef f(x):\n    return x + 1\n",
        score=0, reasons=("NameError",), flags=("cell-timeout",),
    ),
    "ignores_interrupt": Case(
        "import signal\n\ndef f(x):\n    signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "    while True:\n        pass\n",
        score=0, reasons=("did not stop when interrupted",), flags=("cell-timeout",),
    ),
    "memory_bomb": Case(
        "import numpy as np\n\ndef f(x):\n    try:\n        np.ones(int(50e9 / 8))\n"
        "    except MemoryError as e:\n        print('numpy:', e)\n"
        "    bytearray(50 * 10**9)\n    return x + 1\n",
        score=0, reasons=("numpy: Unable to allocate 46.6 GiB", "MemoryError"),
    ),
    "fork_bomb": Case(
        "import os, time\n\ndef f(x):\n    while True:\n        if os.fork() == 0:\n"
        "            time.sleep(30)\n            os._exit(0)\n",
        score=0, reasons=("Resource temporarily unavailable",),
    ),
    "sys_exit": Case(
        "import sys\n\ndef f(x):\n    sys.exit()\n",
        score=0, reasons=("SystemExit",),
    ),
    "os_exit": Case(
        "import os\n\ndef f(x):\n    os._exit(1)\n",
        score=0, reasons=("exited with code 1",), flags=("kernel-died",),
    ),
    "segfault": Case(
        "import ctypes\n\ndef f(x):\n    return ctypes.string_at(0)\n",
        score=0, reasons=("SIGSEGV",), flags=("kernel-died",),
    ),
    "cpu_limit": Case(
        "import resource\n\ndef f(x):\n    used = int(resource.getrusage(resource.RUSAGE_SELF).ru_utime)\n"
        "    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)\n"
        "    resource.setrlimit(resource.RLIMIT_CPU, (used + 1, hard))\n"
        "    while True:\n        pass\n",
        score=0, reasons=("SIGXCPU",), flags=("kernel-died",),
    ),
    "memory_crash": Case(
        "import ctypes, sys, time\nimport numpy as np\n\ndef f(x):\n    try:\n"
        "        np.ones(int(50e9 / 8))\n    except MemoryError as e:\n"
        "        print('MemoryError:', e, file=sys.stderr, flush=True)\n        time.sleep(1)\n"
        "    ctypes.string_at(0)\n",
        score=0, reasons=("SIGSEGV",), flags=("kernel-died",),
    ),
    # -- noisy code ---------------------------------------------------------------------------
    "big_output": Case(
        "for _ in range(100_000):\n    print('x' * 99)\nprint('y' * 1_000_000)\n\n"
        "def f(x):\n    return x + 1\n",
        score=2, reasons=("xxxxxxxxxx",), flags=("output-truncated",),
    ),
    "stderr_warnings": Case(
        "import sys, warnings\nwarnings.warn('this API is deprecated')\n"
        "print('noise on stderr', file=sys.stderr)\n\ndef f(x):\n    return x + 1\n",
        score=2, reasons=("this API is deprecated",),
    ),
    # -- reaching past the submission ---------------------------------------------------------
    "read_outside": Case(
        "import os\nprint('autograded/ holds', sorted(os.listdir('../..')))\n"
        "print('/root holds', sorted(os.listdir('/root')) if os.path.isdir('/root') else [])\n"
        "# at the top level, so that the cell's own output shows every attempt (what the\n"
        "# graded function prints is quoted in the check's record, capped)\n"
        "for path in ('../../../source/99_sandbox/sandbox.ipynb', 'COURSE_ROOT/gradebook.db',\n"
        "             '../../../submitted/OTHER/99_sandbox/sandbox.ipynb', 'HOST_SECRET'):\n"
        "    try:\n        print(open(path, 'rb').read())\n"
        "    except OSError as e:\n        print('blocked:', e)\n"
        "\ndef f(x):\n"
        "    return x + 1\n",
        score=2,
        reasons=("No such file or directory: '../../../source/99_sandbox/sandbox.ipynb'",
                 "gradebook.db'", "No such file or directory: '../../../submitted/",
                 "secret.txt'", "autograded/ holds ['read_outside']"),
    ),
    "write_outside": Case(
        "import os\nopen('/tmp/private.txt', 'w').write('fine: a private /tmp')\n"
        "open('own.txt', 'w').write('fine: its own folder')\n\ndef f(x):\n"
        "    for path in ('COURSE_ROOT/course/evil.py', 'COURSE_ROOT/evil.txt', '../../evil.txt'):\n"
        "        try:\n            open(path, 'w').write('evil')\n"
        "        except OSError as e:\n            print('blocked:', e)\n"
        "        else:\n            print('WROTE', path)\n"
        "    return x + 1\n",
        score=2, reasons=("blocked:",),
    ),
    "network": Case(
        "import socket\n\ndef f(x):\n    for host in [('127.0.0.1', PORT), ('1.1.1.1', 80)]:\n"
        "        try:\n            socket.create_connection(host, timeout=3)\n"
        "        except OSError as e:\n            print(host, 'failed:', e)\n"
        "        else:\n            return x + 1\n    raise ConnectionError('no network')\n",
        score=0, reasons=("Network is unreachable",),
    ),
}
