"""The instructor's commands: the parallel runner, the report, the demo, the provided files.

May import ``autograder.checks``, ``autograder.kernel`` and ``course``.
"""
