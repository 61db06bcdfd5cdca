"""The instructor's hidden half of the course: reference solutions, grading checks, samples.

Never published to students: publish only ``release/`` and ``course/``.
"""
