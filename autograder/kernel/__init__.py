"""Running student code: the bubblewrap kernel manager (``sandbox``), the kernel launcher, the
guard, the execute preprocessor that nbgrader uses (``execute``), its proxy that runs a hidden
check and calls the student's functions in the kernel (``remote``), and the kernel-side shim.

May import ``autograder.course_dir``, ``autograder.notebooks`` and, in ``execute`` and ``remote``
only (the trusted side runs the hidden checks), ``autograder.checks``; ``shim``
only the standard library and numpy (it is the one file mounted into the kernel). Never
``autograder.tools`` (``tests/test_architecture.py``).
"""
