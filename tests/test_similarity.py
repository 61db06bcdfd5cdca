"""``python -m autograder similarity`` (autograder/tools/similarity/) on notebooks of 02.

The submissions are the release notebook with answer cells filled in, as the demo builds them,
placed in ``autograded/`` of a small course directory. Independent correct solutions: the
reference solution of ``source/``, the sample student ada, and the correct alternatives of
``tests/diagnoses/forward.py`` (written to differ from the reference). The disguised copy is
ada's code with every variable renamed, independent statements reordered and the comments and
docstrings rewritten, by hand below.
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, answer_cells

from autograder.samples import batchnorm_forward as samples
from autograder.tools import similarity
from autograder.tools.demo import build_submission
from autograder.tools.similarity.fingerprint import normalize

ASSIGNMENT, NOTEBOOK = "02_batchnorm_forward", "batchnorm_forward.ipynb"
RELEASE = ROOT / "release" / ASSIGNMENT / NOTEBOOK

#: ada's answers, disguised: other names, statements in another order, other comments.
DISGUISED = {
    "batch_stats": '''
def batch_stats(x):
    # my own docstring-free version
    rows = x.shape[0]
    average = x.sum(axis=0) / rows  # the mean
    dev = x - average
    return average, (dev * dev).sum(axis=0) / rows
''',
    "normalize": '''
def normalize(x, mean, var, eps):
    """Standardize."""
    scale = 1.0 / np.sqrt(var + eps)   # inverse std
    return (x - mean) * scale
''',
    "scale_shift": '''
def scale_shift(x_hat, gamma, beta):
    return np.add(np.multiply(x_hat, gamma), beta)  # affine
''',
    "batchnorm_forward": '''
def batchnorm_forward(x, gamma, beta, bn_param):
    """Forward pass of batch normalization."""
    phase = bn_param.get("mode")
    if phase not in {"train", "test"}:
        raise ValueError(f"mode must be 'train' or 'test', not {phase!r}")
    rows, cols = x.shape
    mom = bn_param.get("momentum", 0.1)
    tiny = bn_param.get("eps", 1e-5)
    if "running_var" not in bn_param:
        bn_param["running_var"] = np.ones(cols, dtype=x.dtype)
    if "running_mean" not in bn_param:
        bn_param["running_mean"] = np.zeros(cols, dtype=x.dtype)
    x64 = x.astype(np.float64)
    if phase == "train":
        if rows == 1:
            raise ValueError("need at least two samples per feature in train mode")
        center = x64.mean(axis=0)
        spread = x64.var(axis=0)
        run_m, run_v = bn_param["running_mean"], bn_param["running_var"]
        run_v *= 1 - mom
        run_v += mom * spread * rows / (rows - 1)
        run_m *= 1 - mom
        run_m += mom * center
    else:
        spread = np.asarray(bn_param["running_var"], dtype=np.float64)
        center = np.asarray(bn_param["running_mean"], dtype=np.float64)
    xn = (x64 - center) / np.sqrt(spread + tiny)
    y = (gamma * xn + beta).astype(x.dtype)
    return y, {"x_hat": xn, "gamma": gamma, "inv_std": 1 / np.sqrt(spread + tiny)}
''',
    "spatial_batchnorm_forward": '''
def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    # channels last, then back
    b, ch, hh, ww = x.shape
    flat = np.moveaxis(x, 1, -1).reshape(-1, ch)
    flat_out, memo = batchnorm_forward(flat, gamma, beta, bn_param)
    return np.moveaxis(flat_out.reshape(b, hh, ww, ch), -1, 1), memo
''',
}


def _reference() -> dict[str, str]:
    """The source notebook's solutions, without nbgrader's solution markers."""
    source = answer_cells(ROOT / "source" / ASSIGNMENT / NOTEBOOK, "code")
    return {k: re.sub(r"^\s*### (BEGIN|END) SOLUTION\n", "", v, flags=re.M)
            for k, v in source.items()}


def _alternatives() -> list[dict[str, str]]:
    """Independent correct submissions: for k = 1, 2, the k-th correct alternative of each
    function of tests/diagnoses/forward.py that has one (the first is ada's own)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from diagnoses import forward

    by_function: dict[str, list[str]] = {}
    for fixture in forward.ALTERNATIVES:
        by_function.setdefault(fixture.function, []).append(fixture.source)
    return [{f: sources[k] for f, sources in by_function.items() if len(sources) > k}
            for k in (1, 2)]


def make_course(root: Path, submissions: dict[str, dict[str, str]]) -> Path:
    """A course directory with the release of 02 and one autograded notebook per student."""
    (root / "release" / ASSIGNMENT).mkdir(parents=True)
    (root / "release" / ASSIGNMENT / NOTEBOOK).write_bytes(RELEASE.read_bytes())
    (root / "nbgrader_config.py").write_text(
        f'ASSIGNMENTS = {{"{ASSIGNMENT}": "{NOTEBOOK}"}}\nc = get_config()\n'
        'c.CourseDirectory.course_id = "similarity-test"\n')
    for student, answers in submissions.items():
        folder = root / "autograded" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(build_submission(RELEASE, answers), folder / NOTEBOOK)
    return root


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    ada = samples.STUDENTS["ada"]["answers"]
    code = {k: v for k, v in ada.items() if not k.startswith("answer_")}
    alt1, alt2 = _alternatives()
    course = make_course(tmp_path_factory.mktemp("similarity"), {
        "ada": code, "copy_of_ada": DISGUISED, "reference": _reference(),
        "alt1": alt1, "alt2": alt2, "untouched": {}})
    return course, similarity.compare(ASSIGNMENT, course)


def test_normalization_ignores_names_comments_and_docstrings_but_not_the_calls():
    a, _ = normalize('def f(x):\n    """Doc."""\n    mu = np.mean(x, axis=0)  # mean\n    return mu\n')
    b, _ = normalize("def f(x):\n    # other\n    avg = np.mean(x, axis=0)\n\n    return avg\n")
    c, _ = normalize("def f(x):\n    avg = np.var(x, axis=0)\n    return avg\n")
    assert a == b and a != c
    assert normalize("def f(:\n  x = 1")[0]  # code that does not parse still gives tokens


def test_a_disguised_copy_ranks_above_every_pair_of_independent_solutions(result):
    _, res = result
    by_pair = {frozenset((p.student_a, p.student_b)): p.similarity for p in res.pairs}
    copy = by_pair[frozenset(("ada", "copy_of_ada"))]
    independent = {pair: value for pair, value in by_pair.items()
                   if "untouched" not in pair and "copy_of_ada" not in pair}
    assert len(independent) == 6  # ada, reference, alt1, alt2: every pair of them
    assert copy > 0.9, copy
    assert copy > max(independent.values()) + 0.2, (copy, independent)
    assert res.pairs[0].similarity == copy  # highest first
    assert {cell for cell, _ in res.pairs[0].cells} == set(DISGUISED)


def test_the_untouched_release_scores_near_zero_against_everyone(result):
    _, res = result
    for p in res.pairs:
        if "untouched" in (p.student_a, p.student_b):
            assert p.similarity < 0.05, p


def test_command_writes_csv_and_a_page_that_quotes_and_never_accuses(result, tmp_path):
    course, res = result
    out = subprocess.run([sys.executable, "-m", "autograder", "similarity", ASSIGNMENT,
                          "--root", str(course)], capture_output=True, text=True, timeout=300,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr
    with open(course / "reports" / ASSIGNMENT / "similarity.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["student_a", "student_b", "similarity", "cells"]
    assert len(rows) == len(res.pairs) == 15
    values = [float(r["similarity"]) for r in rows]
    assert values == sorted(values, reverse=True) and all(0 <= v <= 1 for v in values)
    assert {rows[0]["student_a"], rows[0]["student_b"]} == {"ada", "copy_of_ada"}
    assert "batchnorm_forward" in rows[0]["cells"]
    page = (course / "reports" / ASSIGNMENT / "similarity.html").read_text()
    assert "What the number measures" in page and "nothing more" in page
    assert "<script" not in page and "<mark>" in page
    assert 'href="report.html"' in page


def test_a_hostile_student_id_and_code_stay_text(tmp_path):
    hostile = '=HYPERLINK("evil.example","x")'
    evil = {"batch_stats": 'def batch_stats(x):\n    s = "</pre><script>alert(1)</script>"\n'
                           '    return x.mean(axis=0), x.var(axis=0)\n'}
    course = make_course(tmp_path, {hostile: evil, "b": evil})
    res = similarity.compare(ASSIGNMENT, course)
    csv_path, html_path = similarity.write(res, course / "reports" / ASSIGNMENT)
    assert res.pairs[0].similarity > 0.9
    with open(csv_path, newline="") as fh:
        cells = [c for row in csv.reader(fh) for c in row]
    assert "'" + hostile in cells and hostile not in cells
    page = html_path.read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_unreadable_notebooks_are_named_and_left_out(tmp_path):
    course = make_course(tmp_path, {"a": {}, "b": {}})
    (course / "autograded" / "b" / ASSIGNMENT / NOTEBOOK).write_text("{not json")
    fifo = course / "autograded" / "c" / ASSIGNMENT
    fifo.mkdir(parents=True)
    import os

    os.mkfifo(fifo / NOTEBOOK)
    res = similarity.compare(ASSIGNMENT, course)
    assert res.students == ["a"]
    assert any(n.startswith("b: left out") and "readable" in n for n in res.notes)
    assert any(n.startswith("c: left out") and "regular file" in n for n in res.notes)


def test_shared_token_counts_equal_copydetects_slices(result):
    """The per-pair count (sets) is the total length of copydetect's get_copied_slices."""
    import numpy as np

    from autograder.tools.similarity.fingerprint import shared_slices, shared_tokens

    _, res = result
    checked = 0
    for pair in res.pairs:
        for cell in res.cells:
            a, b = res.prints[pair.student_a][cell], res.prints[pair.student_b][cell]
            if a.hashes & b.hashes:
                slices_a, slices_b = shared_slices(a, b)
                assert shared_tokens(a, b) == (int(np.sum(slices_a[1] - slices_a[0])),
                                               int(np.sum(slices_b[1] - slices_b[0])))
                checked += 1
    assert checked > 20


def test_marked_code_is_the_compared_tokens_not_comments():
    import numpy as np

    from autograder.tools.similarity.fingerprint import fingerprint, marked_segments, shared_slices

    a = fingerprint("def f(x):\n    # one comment\n    y = np.sum(x ** 2, axis=0) - x.mean()\n"
                    "    return y * 3\n", np.array([], dtype=np.int64))
    b = fingerprint("def f(x):\n    z = np.sum(x ** 2, axis=0) - x.mean()  # another\n"
                    "    return z * 3\n", np.array([], dtype=np.int64))
    segments = marked_segments(a, shared_slices(a, b)[0])
    assert "".join(text for text, _ in segments) == a.source  # nothing lost, nothing added
    marked = [text for text, shared in segments if shared]
    assert any("np.sum(x ** 2, axis=0) - x.mean()" in text for text in marked)
    assert not any("#" in text for text in marked)
