"""``python -m autograder.tools.similarity ASSIGNMENT``: the same as ``python -m autograder similarity``."""

from autograder.tools.similarity import main

raise SystemExit(main())
