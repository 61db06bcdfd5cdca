"""The runner's gradebook writes: keep a student's earlier grades, put them back, or record a zero.

Before a student is graded the runner keeps a :func:`snapshot` of their entries for the
assignment. If grading then fails, a student graded before gets the snapshot back
(:func:`restore`); a student never graded before gets a zero on every cell
(:func:`record_zero`, nbgrader's own treatment of a missing notebook). Only the runner's client
process calls these, never while nbgrader grades the same student.
"""

from __future__ import annotations

import datetime as dt
import warnings


def snapshot(gb, assignment: str, student: str) -> dict | None:
    """The student's autograde results for ``assignment`` in the gradebook, or None if none.

    Holds the submission timestamp, and per notebook the late penalty, each grade's
    ``auto_score`` and ``needs_manual_grade`` and each comment's ``auto_comment``: everything
    ``nbgrader autograde`` writes.
    """
    from nbgrader.api import (
        Assignment,
        Comment,
        Grade,
        Student,
        SubmittedAssignment,
        SubmittedNotebook,
    )
    from sqlalchemy.orm import joinedload, selectinload

    # nbgrader's find_submission, loading the notebooks, grades, comments and their cells' names
    # in four queries: lazily it was one per grade and comment (15 for notebook 01), each a round
    # trip to a PostgreSQL server, twice per student in the runner's one process
    sub = (gb.db.query(SubmittedAssignment)
           .join(Assignment, Assignment.id == SubmittedAssignment.assignment_id)
           .join(Student, Student.id == SubmittedAssignment.student_id)
           .filter(Assignment.name == assignment, Student.id == student)
           .options(selectinload(SubmittedAssignment.notebooks).options(
               joinedload(SubmittedNotebook.notebook),
               selectinload(SubmittedNotebook.grades).joinedload(Grade.cell),
               selectinload(SubmittedNotebook.comments).joinedload(Comment.cell)))
           .one_or_none())
    if sub is None:
        return None
    return {
        "timestamp": sub.timestamp,
        "notebooks": {
            nb.name: {
                "late_submission_penalty": nb.late_submission_penalty,
                "grades": {g.name: (g.auto_score, g.needs_manual_grade) for g in nb.grades},
                "comments": {c.name: c.auto_comment for c in nb.comments},
            }
            for nb in sub.notebooks
        },
    }


def has_grades(snap: dict | None) -> bool:
    """Whether a :func:`snapshot` holds an earlier autograde (any score set)."""
    return bool(snap) and any(
        auto is not None for nb in snap["notebooks"].values() for auto, _ in nb["grades"].values()
    )


def restore(gb, assignment: str, student: str, snap: dict) -> None:
    """Write a :func:`snapshot` back, undoing whatever a failed autograde changed."""
    sub = gb.find_submission(assignment, student)
    sub.timestamp = snap["timestamp"]
    for nb in sub.notebooks:
        saved = snap["notebooks"].get(nb.name)
        if saved is None:
            continue
        nb.late_submission_penalty = saved["late_submission_penalty"]
        for grade in nb.grades:
            if grade.name in saved["grades"]:
                grade.auto_score, grade.needs_manual_grade = saved["grades"][grade.name]
        for comment in nb.comments:
            if comment.name in saved["comments"]:
                comment.auto_comment = saved["comments"][comment.name]
    gb.db.commit()


def record_zero(gb, assignment: str, student: str, timestamp: dt.datetime | None) -> None:
    """Give the student's submission a zero on every cell, as nbgrader does for a missing notebook.

    Creates the student and the submission if needed (``update_or_create_*``, as autograde
    does), then sets ``auto_score = 0`` and ``needs_manual_grade = False`` on every grade.
    """
    from sqlalchemy.exc import SAWarning

    gb.update_or_create_student(student)
    kwargs = {"timestamp": timestamp} if timestamp else {}
    with warnings.catch_warnings():  # nbgrader's own autoflush quirk when it adds a submission
        warnings.simplefilter("ignore", SAWarning)
        sub = gb.update_or_create_submission(assignment, student, **kwargs)
    for nb in sub.notebooks:
        for grade in nb.grades:
            grade.auto_score = 0
            grade.needs_manual_grade = False
    gb.db.commit()


# ----------------------------------------------------------------------------- workers
