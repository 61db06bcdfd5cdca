"""Submissions that tamper with the grader or reach past themselves, each with its outcome.

``tests/test_guard.py`` runs each case as a small notebook in the guarded kernel
(``python -P -m autograder.kernel.launcher``), in ``autograded/<case>/02_batchnorm_forward/`` of a scratch
copy of the course. The notebook is :data:`HONEST` (correct ``batch_stats``, ``normalize`` and
``scale_shift``, written independently of the reference) followed by the case's ``cells``: the
student's cells and hidden-test cells exactly as nbgrader runs them (:func:`hidden`).

``checks`` gives, for each hidden check, the expected :class:`Outcome`: the points nbgrader awards
the cell (``nbgrader.utils.determine_grade``: an error or any stderr output scores 0, a number is
partial credit, no output at all is full marks), the flag kinds its cell must show (exactly: an
unaffected check shows none), and a text that must appear in its output (the flag's reason, or
the report's message). ``unguarded`` gives the points nbgrader awards the same cell in an
unguarded kernel: the attack works there, so the guard is what stops it.
``elsewhere`` are flag kinds expected outside the hidden test cells. ``files`` are written first, relative to the submission folder; ``absent`` are paths, relative
to the course root, that must not exist after the run. ``unguarded_kernel`` says which unguarded
kernel shows the attack.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Correct answers for the three checks the cases use (2, 2 and 1 points).
HONEST = """\
import numpy as np

def batch_stats(x):
    mean = x.mean(axis=0)
    return mean, ((x - mean) ** 2).mean(axis=0)

def normalize(x, mean, var, eps):
    return (x - mean) / np.sqrt(var + eps)

def scale_shift(x_hat, gamma, beta):
    return gamma * x_hat + beta
"""

#: Points of each hidden check used here (the notebook's metadata in the real course).
POINTS = {"check_batch_stats": 2.0, "check_normalize": 2.0, "check_scale_shift": 1.0,
          "check_batchnorm_forward": 6.0, "check_batchnorm_backward": 2.0}


def hidden(function: str) -> str:
    """The hidden test cell nbgrader runs for ``function``: one import, one call."""
    return f"from autograder.checks import check_{function}; check_{function}({function})"


@dataclass(frozen=True)
class Outcome:
    """What a hidden check's cell must show.

    ``score`` is the points nbgrader awards the cell; ``below`` a bound they must stay under
    instead; ``flags`` the flag kinds in the cell; ``text`` a substring of the cell's output;
    ``error`` the exception name of an error output the cell must have.
    """

    score: float = 0.0
    flags: tuple[str, ...] = ()
    text: str = ""
    below: float | None = None
    error: str = ""


@dataclass(frozen=True)
class Case:
    cells: tuple[str, ...]
    checks: dict[str, Outcome]
    unguarded: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    absent: tuple[str, ...] = ()
    #: Where ``unguarded`` runs: "plain" (ipykernel) or "no-safe-path" (``python -m
    #: autograder.kernel`` without ``-P``: the working directory comes first on sys.path).
    unguarded_kernel: str = "plain"
    #: Flag kinds shown outside the hidden test cells (in the cell that raised them).
    elsewhere: tuple[str, ...] = ()


def full(check: str) -> Outcome:
    """An unaffected check: full points, no flag."""
    return Outcome(score=POINTS[check])


CASES: dict[str, Case] = {
    # -- tampering with the grader ----------------------------------------------------------------
    "numpy_allclose": Case(
        cells=(
            "np.allclose = lambda *args, **kwargs: True\n\n"
            "def batch_stats(x):\n    return x.mean(axis=0), x.var(axis=0, ddof=1)  # M1\n",
            hidden("batch_stats"),
        ),
        checks={"check_batch_stats": Outcome(flags=("tampering",),
                                             text="numpy.allclose was replaced")},
        unguarded={"check_batch_stats": 2.0},
    ),
    "numpy_testing": Case(
        cells=(
            hidden("scale_shift"),
            "import numpy.testing\n"
            "numpy.testing.assert_allclose = lambda *args, **kwargs: None\n",
            hidden("normalize"),
        ),
        checks={"check_scale_shift": full("check_scale_shift"),
                "check_normalize": Outcome(flags=("tampering",),
                                           text="numpy.testing.assert_allclose was replaced")},
    ),
    "builtins": Case(
        cells=(
            "import builtins\n_isinstance = isinstance\n"
            "builtins.isinstance = lambda obj, kind: _isinstance(obj, kind)\n"
            "builtins.abs = lambda value: 0 * value  # numpy's isclose calls abs(x - y)\n\n"
            "def batch_stats(x):\n    return x.mean(axis=0), x.var(axis=0, ddof=1)  # M1\n",
            hidden("batch_stats"),
        ),
        checks={"check_batch_stats": Outcome(flags=("tampering",),
                                             text="builtins.isinstance was replaced")},
        unguarded={"check_batch_stats": 2.0},
    ),
    "check_replaced": Case(
        cells=(
            hidden("scale_shift"),
            "import autograder.checks\n"
            "autograder.checks.check_batchnorm_forward = lambda fn: 6.0\n\n"
            "def batchnorm_forward(x, gamma, beta, bn_param):\n    return x, None\n",
            hidden("batchnorm_forward"),
        ),
        checks={"check_scale_shift": full("check_scale_shift"),
                "check_batchnorm_forward": Outcome(
                    flags=("tampering",),
                    text="autograder.checks.check_batchnorm_forward was replaced")},
        unguarded={"check_batchnorm_forward": 6.0},
    ),
    "sys_modules": Case(
        cells=(
            "import sys, types\nfake = types.ModuleType('autograder.checks')\n"
            "fake.check_normalize = lambda fn: 2.0\nsys.modules['autograder.checks'] = fake\n\n"
            "def normalize(x, mean, var, eps):\n    return x\n",
            hidden("normalize"),
        ),
        checks={"check_normalize": Outcome(
            flags=("tampering",), text="sys.modules['autograder.checks'] was replaced")},
        unguarded={"check_normalize": 2.0},
    ),
    "grader_class_patched": Case(
        cells=(
            "from autograder.checks.framework import Grader\n"
            "Grader.finish = lambda self: self.points\n\n"
            "def normalize(x, mean, var, eps):\n    return x\n",
            hidden("normalize"),
        ),
        checks={"check_normalize": Outcome(
            flags=("tampering",), text="the class autograder.checks.framework.Grader was changed")},
        unguarded={"check_normalize": 2.0},
    ),
    "always_equal": Case(
        cells=(
            "class AlwaysEqual:\n    def __eq__(self, other):\n        return True\n\n"
            "    def __ne__(self, other):\n        return False\n\n"
            "    __hash__ = object.__hash__\n\n"
            "def batch_stats(x):\n    return AlwaysEqual(), AlwaysEqual()\n\n"
            "class Agreeable(np.ndarray):  # says yes to == and to every numpy function\n"
            "    def __eq__(self, other):\n        return np.ones(np.shape(other), dtype=bool)\n\n"
            "    def __array_function__(self, func, types, args, kwargs):\n        return True\n\n"
            "def scale_shift(x_hat, gamma, beta):\n"
            "    return np.zeros_like(x_hat).view(Agreeable)\n",
            hidden("batch_stats"),
            hidden("scale_shift"),
        ),
        checks={"check_batch_stats": Outcome(below=0.5,
                                             text="cannot be compared as numbers"),
                "check_scale_shift": Outcome(below=0.5, text="out is wrong")},
    ),
    "showtraceback": Case(  # nbgrader #1324: no traceback, no output, full marks
        cells=(
            hidden("scale_shift"),
            "get_ipython().showtraceback = lambda *args, **kwargs: None\n"
            "del batch_stats  # the hidden test cell now raises NameError\n",
            hidden("batch_stats"),
        ),
        checks={"check_scale_shift": full("check_scale_shift"),
                "check_batch_stats": Outcome(flags=("tampering",),
                                             text="showtraceback", error="NameError")},
        unguarded={"check_batch_stats": 2.0},
    ),
    "check_code_swapped": Case(  # function attributes: refused as they happen (audit hook)
        cells=(
            "import autograder.checks\ntry:\n"
            "    autograder.checks.check_normalize.__code__ = (lambda fn: 2.0).__code__\n"
            "except PermissionError as e:\n    print('refused:', e)\n\n"
            "def normalize(x, mean, var, eps):\n    return x\n",
            hidden("normalize"),
        ),
        checks={"check_normalize": Outcome(
            flags=("tampering",),
            text="tried to set autograder.checks.batchnorm_forward.check_normalize.__code__")},
    ),
    "input_transformer": Case(  # rewrites the hidden test cell before anything else sees it
        cells=(
            hidden("scale_shift"),
            "def cheat(lines):\n"
            "    return ['2.0\\n'] if any('check_batch_stats' in line for line in lines) else lines\n\n"
            "get_ipython().input_transformers_post.append(cheat)\n\n"
            "def batch_stats(x):\n    raise ValueError('not done')\n",
            hidden("batch_stats"),
        ),
        checks={"check_scale_shift": full("check_scale_shift"),
                "check_batch_stats": Outcome(flags=("tampering",),
                                             text="input_transformers_post was changed")},
        unguarded={"check_batch_stats": 2.0},
    ),
    "shadow_package": Case(  # its own autograder/ in the submission folder (the kernel's cwd)
        files={"autograder/__init__.py": "",
               "autograder/kernel.py": "from ipykernel.kernelapp import launch_new_instance\n"
                                       "launch_new_instance()\n",
               "autograder/checks.py": "def check_batch_stats(fn):\n    return 2.0\n"},
        unguarded_kernel="no-safe-path",
        cells=(
            "def batch_stats(x):\n    raise ValueError('not done')\n",
            hidden("batch_stats"),
        ),
        checks={"check_batch_stats": Outcome(score=0.0, text="raised ValueError")},
        unguarded={"check_batch_stats": 2.0},
    ),
    # -- reaching for the reference ---------------------------------------------------------------
    "import_reference": Case(
        cells=(
            hidden("scale_shift"),
            "try:\n    import autograder.reference as ref\n"
            "except ImportError as e:\n    print('refused:', e)\n",
            hidden("batch_stats"),
        ),
        checks={"check_scale_shift": full("check_scale_shift"),
                "check_batch_stats": Outcome(
                    flags=("reference-access",),
                    text="import of the grader's hidden module autograder.reference")},
    ),
    "reference_via_checks": Case(
        cells=(
            "import autograder.checks.batchnorm_backward as cb\nimport autograder.checks.batchnorm_forward as cf\n\n"
            "def normalize(x, mean, var, eps):\n    return cf.ref.normalize(x, mean, var, eps)\n\n"
            "def batchnorm_backward(dout, cache):\n"
            "    return cb.ref.batchnorm_backward(dout, cache)\n",
            hidden("normalize"),
            hidden("scale_shift"),
            hidden("batchnorm_backward"),
        ),
        checks={"check_normalize": Outcome(
                    flags=("reference-access",),
                    text="autograder.reference.normalize was called from student code in "
                         "normalize"),
                "check_scale_shift": full("check_scale_shift"),
                "check_batchnorm_backward": Outcome(
                    flags=("reference-access",),
                    text="autograder.reference.batchnorm_backward was called")},
        unguarded={"check_normalize": 2.0},
    ),
    "reference_alias": Case(
        cells=(
            "import sys\nbatch_stats = sys.modules['autograder.checks.batchnorm_forward'].ref.batch_stats\n",
            hidden("batch_stats"),
            hidden("scale_shift"),
        ),
        checks={"check_batch_stats": Outcome(flags=("reference-access",),
                                             text="is the grader's reference solution itself"),
                "check_scale_shift": full("check_scale_shift")},
        unguarded={"check_batch_stats": 2.0},
    ),
    "reference_via_gc": Case(
        cells=(
            hidden("scale_shift"),
            "import gc\n"
            "normalize = next(o for o in gc.get_objects() if callable(o)\n"
            "                 and getattr(o, '__module__', '') == 'autograder.reference'\n"
            "                 and getattr(o, '__name__', '') == 'normalize')\n",
            hidden("normalize"),
        ),
        checks={"check_scale_shift": full("check_scale_shift"),
                "check_normalize": Outcome(flags=("tampering", "reference-access"),
                                           text="gc.get_objects")},
        unguarded={"check_normalize": 2.0},
    ),
    "getsource": Case(
        cells=(
            "import inspect\nimport autograder.checks.batchnorm_forward as cf\n"
            "for target in (cf.ref, cf.ref.batch_stats):\n    try:\n"
            "        print(inspect.getsource(target)[:80])\n"
            "    except Exception as e:\n        print('refused:', type(e).__name__, e)\n",
            hidden("batch_stats"),
        ),
        checks={"check_batch_stats": Outcome(
            flags=("reference-access",),
            text="read of autograder/reference.py (the grader's code)")},
    ),
    # -- reaching past the submission -------------------------------------------------------------
    "read_source": Case(
        cells=(
            "def batch_stats(x):\n    try:\n"
            "        open('../../../source/02_batchnorm_forward/batchnorm_forward.ipynb').read()\n"
            "    except OSError:\n        pass\n"
            "    mean = x.mean(axis=0)\n    return mean, ((x - mean) ** 2).mean(axis=0)\n",
            hidden("batch_stats"),
            hidden("scale_shift"),
        ),
        checks={"check_batch_stats": Outcome(
                    flags=("reference-access",),
                    text="read of source/02_batchnorm_forward/batchnorm_forward.ipynb"),
                "check_scale_shift": full("check_scale_shift")},
        unguarded={"check_batch_stats": 2.0},
    ),
    "read_gradebook": Case(
        cells=(
            "import sqlite3\n\ndef scale_shift(x_hat, gamma, beta):\n    try:\n"
            "        sqlite3.connect('file:../../../gradebook.db?mode=ro', uri=True)\n"
            "        open('../../../gradebook.db', 'rb').read()\n"
            "    except Exception:\n        pass\n"
            "    return gamma * x_hat + beta\n",
            hidden("scale_shift"),
            hidden("batch_stats"),
        ),
        checks={"check_scale_shift": Outcome(flags=("forbidden-file",),
                                             text="read of gradebook.db (the gradebook)"),
                "check_batch_stats": full("check_batch_stats")},
        unguarded={"check_scale_shift": 1.0},
    ),
    "read_other_student": Case(
        files={"../../bob/02_batchnorm_forward/batchnorm_forward.ipynb": "{}"},
        cells=(
            "def normalize(x, mean, var, eps):\n    try:\n"
            "        open('../../bob/02_batchnorm_forward/batchnorm_forward.ipynb').read()\n"
            "    except OSError:\n        pass\n"
            "    return (x - mean) / np.sqrt(var + eps)\n",
            hidden("normalize"),
            hidden("scale_shift"),
        ),
        checks={"check_normalize": Outcome(flags=("forbidden-file",),
                                           text="other students' folders"),
                "check_scale_shift": full("check_scale_shift")},
        unguarded={"check_normalize": 2.0},
    ),
    "write_outside": Case(
        cells=(
            "def batch_stats(x):\n"
            "    for path in ('../../../course/evil.py', '../../../evil.txt', 'own.txt'):\n"
            "        try:\n            open(path, 'w').write('evil')\n"
            "        except OSError:\n            pass\n"
            "    mean = x.mean(axis=0)\n    return mean, ((x - mean) ** 2).mean(axis=0)\n",
            hidden("batch_stats"),
            hidden("scale_shift"),
        ),
        checks={"check_batch_stats": Outcome(flags=("forbidden-file",),
                                             text="write to course/evil.py"),
                "check_scale_shift": full("check_scale_shift")},
        absent=("course/evil.py", "evil.txt"),
    ),
    "network": Case(
        cells=(
            "import socket\n\ndef normalize(x, mean, var, eps):\n    try:\n"
            "        socket.create_connection(('127.0.0.1', 9), timeout=1).close()\n"
            "    except OSError:\n        pass\n"
            "    return (x - mean) / np.sqrt(var + eps)\n",
            hidden("normalize"),
            hidden("scale_shift"),
        ),
        checks={"check_normalize": Outcome(flags=("network",), text="'127.0.0.1'"),
                "check_scale_shift": full("check_scale_shift")},
        unguarded={"check_normalize": 2.0},
    ),
    # -- informational: shown to the instructor, no effect on the score -------------------------
    "subprocess_and_ctypes": Case(
        cells=(
            "import ctypes, subprocess\nsubprocess.run(['true'], check=True)\n"
            "ctypes.CDLL(None).abs(-3)\n",
            hidden("batch_stats"),
        ),
        checks={"check_batch_stats": full("check_batch_stats")},
        elsewhere=("subprocess", "native-code"),
    ),
    # -- an honest student who does ordinary things: nothing is flagged ---------------------------
    "honest": Case(
        files={"helpers.py": "def column_mean(x):\n    return x.mean(axis=0)\n"},
        cells=(
            "%precision 3\nimport tempfile, traceback, warnings\n"
            "import matplotlib.pyplot as plt\nfrom helpers import column_mean\n"
            "np.random.seed(0)\nnp.set_printoptions(precision=4)\n"
            "plt.plot([1, 2, 3])\nplt.show()\n"
            "open('notes.txt', 'w').write('my own folder')\n"
            "with tempfile.NamedTemporaryFile('w') as f:\n    f.write('scratch space')\n\n"
            "def batch_stats(x):\n    mean = column_mean(x)\n    print('debug', mean.shape)\n"
            "    return mean, ((x - mean) ** 2).mean(axis=0)\n\n"
            "def normalize(x, mean, var, eps):\n"
            "    traceback.format_stack()  # reads every frame, the grader's too\n"
            "    warnings.warn('just checking', UserWarning)\n"
            "    return (x - mean) / np.sqrt(var + eps)\n",
            "import inspect\nprint(inspect.getsource(batch_stats)[:30])\n"
            "np.pi * np.ones(3)",
            hidden("batch_stats"),
            hidden("normalize"),
            hidden("scale_shift"),
        ),
        checks={"check_batch_stats": full("check_batch_stats"),
                "check_normalize": full("check_normalize"),
                "check_scale_shift": full("check_scale_shift")},
    ),
}
