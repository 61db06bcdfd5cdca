"""``python -m autograder.tools.report ASSIGNMENT``: the same as ``python -m autograder report``."""

from autograder.tools.report import main

raise SystemExit(main())
