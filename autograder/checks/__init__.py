"""Hidden checks, one per graded function; the notebooks' hidden test cells call these.

Each check compares the student's function with ``autograder.reference`` on seeded random
inputs, names the mistake when the output matches a known one (``autograder/MISCONCEPTIONS.md``
ids M1–M32), and returns the points earned (nbgrader partial credit) with its record
(``autograder.record``: parts, diagnoses, notes; its rendering is what the cell prints). A
function that calls other graded functions of its notebook is also compared with the reference
composed with the student's own callees (error carried forward, ``carried.py``).
The checks are grouped by assignment (``standardization.py``; ``batchnorm_stages.py``,
``batchnorm_forward.py`` with ``batchnorm_models.py``, and ``spatial_batchnorm.py``;
``backward_stages.py`` and ``batchnorm_backward.py``; ``sandwich.py`` and ``experiments.py``;
``beyond_batchnorm.py`` and ``batchrenorm.py``) on top of ``framework.py`` (the API:
``hidden_check``, ``Grader`` of ``grader.py``, the helpers of ``values.py``); this module is the
single import point the notebooks use.

May import ``autograder.reference``, ``autograder.notebooks``, ``autograder.record``,
``autograder.course_dir`` and ``course``; never ``autograder.tools``, ``autograder.kernel`` or
``autograder.samples``.
"""

from autograder.checks.backward_stages import *  # noqa: F403
from autograder.checks.backward_stages import __all__ as _backward_stages
from autograder.checks.batchnorm_backward import *  # noqa: F403
from autograder.checks.batchnorm_backward import __all__ as _backward
from autograder.checks.batchnorm_forward import *  # noqa: F403
from autograder.checks.batchnorm_forward import __all__ as _forward
from autograder.checks.batchnorm_stages import *  # noqa: F403
from autograder.checks.batchnorm_stages import __all__ as _stages
from autograder.checks.batchrenorm import *  # noqa: F403
from autograder.checks.batchrenorm import __all__ as _batchrenorm
from autograder.checks.beyond_batchnorm import *  # noqa: F403
from autograder.checks.beyond_batchnorm import __all__ as _beyond
from autograder.checks.experiments import *  # noqa: F403
from autograder.checks.experiments import __all__ as _measuring
from autograder.checks.sandwich import *  # noqa: F403
from autograder.checks.sandwich import __all__ as _experiments
from autograder.checks.spatial_batchnorm import *  # noqa: F403
from autograder.checks.spatial_batchnorm import __all__ as _spatial
from autograder.checks.standardization import *  # noqa: F403
from autograder.checks.standardization import __all__ as _standardization

__all__ = [*_standardization, *_stages, *_forward, *_spatial, *_backward_stages, *_backward, *_experiments, *_measuring, *_beyond,
           *_batchrenorm]
