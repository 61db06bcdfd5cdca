"""The instructor's hidden half of the course: reference solutions, grading checks, samples.

Never published to students: publish only ``release/`` and ``course/``. Its packages, each
with one concern (``ARCHITECTURE.md`` draws the map):

- ``checks/``: what hidden test cells import; may import ``reference``, ``notebooks``,
  ``record`` and ``course`` (the public support package), never ``tools/``, ``kernel/`` or
  ``samples/``;
- ``kernel/``: running student code (sandbox, launcher, guard, execute preprocessor, the remote
  proxy and the kernel-side shim); may import ``course_dir``, and ``checks/`` only in the execute
  preprocessor and the remote proxy; never ``tools/``;
- ``tools/``: the instructor's commands; may import everything above;
- ``samples/``: the demo's sample submissions (plain data, imports nothing of ours);
- ``record.py`` (a hidden check's record as data, and its rendering) and ``course_dir.py``:
  leaves that import nothing from ``autograder``; ``notebooks.py`` (the one notebook reader)
  imports ``record`` only.

``tests/test_architecture.py`` enforces these directions and the absence of import cycles.
"""
