"""Files that an assignment hands to students, generated from the hidden reference.

Assignments 04 to 06 train networks with BatchNorm, but BatchNorm is the solution of 02 and 03,
so ``source/04_experiments/provided_batchnorm.py`` (and 05's and 06's copies) is *generated* here
from :mod:`autograder.reference` (the exact source of the functions, not a copy that could
drift); 06 also gets 05's LayerNorm (``provided_layernorm.py``). nbgrader copies them into
``release/`` with the notebook. In a real course, release an assignment only after the deadlines
of the ones whose solutions it ships.

``python -m autograder.tools.provided`` (run by ``make release``) rewrites the files;
``tests/test_experiments.py`` checks that the committed files equal :func:`render`.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from autograder import reference as ref
from autograder.course_dir import ROOT  # noqa: E402
from autograder.reference import batchnorm as ref_batchnorm
from autograder.reference import beyond as ref_beyond

_BN_HEADER = '''\
"""BatchNorm forward and backward passes, provided for assignments 04 and 05.

These are the course's reference solutions of notebooks 02 and 03, with PyTorch's semantics
(``torch.nn.BatchNorm1d``): normalize with the biased batch variance, update ``running_var`` with
the unbiased one, ``running = (1 - momentum) * running + momentum * batch_stat``.

Generated from autograder/reference/batchnorm.py by ``python -m autograder.tools.provided``; do not edit.
"""

import numpy as np

from course.validate import as_float_array, check_real, check_vector
'''

_GRADCHECK_HEADER = '''\
"""A numerical gradient, provided for assignments 04 and 05.

This is the course's reference solution of notebook 03's ``numerical_gradient`` (centered
differences of ``sum(f(x) * dout)``), so it is released with 04 and 05, after 03's deadline, and never
placed in ``course/``, which students have from day one.

Generated from autograder/reference/batchnorm.py by ``python -m autograder.tools.provided``; do not edit.
"""

import numpy as np

from course.validate import as_float_array, check_real
'''

_LN_HEADER = '''\
"""LayerNorm forward and backward passes, provided for assignment 06.

These are the course's reference solutions of notebook 05 (``torch.nn.LayerNorm(D)`` semantics:
each row normalized over its D features with the biased variance, eps inside the square root),
released after 05's deadline. Section 2 of notebook 06 starts from ``layernorm_backward``.

Generated from autograder/reference/beyond.py by ``python -m autograder.tools.provided``; do not edit.
"""

import numpy as np

from course.validate import as_float_array, check_real, check_vector
'''

#: The BatchNorm file: 04 trains its network with it; 05 compares Batch Renorm with BatchNorm;
#: 06 folds it.
_BATCHNORM = [
    _BN_HEADER,
    ref_batchnorm._bn_settings,
    ref.batchnorm_forward,
    ("_CACHE_KEYS", ref_batchnorm._CACHE_KEYS),
    ref_batchnorm._backward_inputs,
    ref.batchnorm_backward,
]
#: The numerical gradient: 04's and 05's visible gradient checks.
_GRADCHECK = [_GRADCHECK_HEADER, ref.numerical_gradient]
#: LayerNorm: 06 compares RMSNorm with it and derives RMSNorm's backward pass from it.
_LAYERNORM = [
    _LN_HEADER,
    ref_beyond._param_dict,
    ref_beyond._standardize_last,
    ref_beyond._centered_backward,
    ref_beyond._backward_cache,
    ref.layernorm_forward,
    ref.layernorm_backward,
]

#: What each provided file holds, in order: its header, then reference functions or
#: (name, value) constants.
PROVIDED = {
    Path("source/04_experiments/provided_batchnorm.py"): _BATCHNORM,
    Path("source/05_beyond_batchnorm/provided_batchnorm.py"): _BATCHNORM,
    Path("source/04_experiments/provided_gradcheck.py"): _GRADCHECK,
    Path("source/05_beyond_batchnorm/provided_gradcheck.py"): _GRADCHECK,
    Path("source/06_modern_normalization/provided_batchnorm.py"): _BATCHNORM,
    Path("source/06_modern_normalization/provided_layernorm.py"): _LAYERNORM,
}


def render(items) -> str:
    """The text of a provided file: the header, then each function's exact source."""
    parts = []
    for item in items:
        if isinstance(item, str):
            parts.append(item)
        elif isinstance(item, tuple):
            name, value = item
            parts.append(f"{name} = {value!r}\n")
        else:
            parts.append(inspect.getsource(item))
    return "\n\n".join(p.rstrip("\n") + "\n" for p in parts)


def write_all(root: Path = ROOT) -> list[Path]:
    """(Re)write every provided file under ``root``; return the paths written."""
    written = []
    for rel, items in PROVIDED.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(items))
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_all():
        print(f"wrote {p.relative_to(ROOT)}")
