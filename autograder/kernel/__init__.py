"""Running student code: the bubblewrap kernel manager, the kernel launcher, the guard and the
execute preprocessor that nbgrader uses.

May import ``autograder.checks`` (the trusted side runs the hidden checks) and the standard
library; never ``autograder.tools``.
"""
