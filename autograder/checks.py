"""Hidden checks, one per graded function; the notebooks' hidden test cells call these.

Each check compares the student's function with ``autograder.reference`` on seeded random
inputs, names the mistake when the output matches a known one (``../shared/MISCONCEPTIONS.md``
ids M1–M21), prints a report, and returns the points earned (nbgrader partial credit).
The checks are grouped by assignment in ``autograder/checks_*.py``; this module is the single
import point the notebooks use.
"""
