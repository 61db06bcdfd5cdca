"""Run time of ``python -m autograder similarity`` for 50, 100 and 200 submissions of 02.

Each submission is the release notebook with every answer cell taken, at random (seeded), from
the answers the course already has for that function: the sample students, the diagnosis
fixtures of ``tests/diagnoses/forward.py`` (mistakes and correct alternatives) and the reference
solution; its variables are then renamed at random, so no two submissions are the same text.
The notebooks go into ``autograded/`` of a scratch course directory (no grading is needed: the
command reads the graded notebooks), and :func:`autograder.tools.similarity.compare` plus
:func:`~autograder.tools.similarity.write` are timed, side by side for the three sizes, with the
time per pair (the pairs grow as n²)::

    .venv/bin/python benchmarks/bench_similarity.py [--sizes 50 100 200]
"""

from __future__ import annotations

import argparse
import io
import random
import re
import sys
import tempfile
import time
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import nbformat  # noqa: E402

from autograder.samples import batchnorm_forward as samples  # noqa: E402
from autograder.tools import similarity  # noqa: E402
from autograder.tools.demo import build_submission  # noqa: E402
from autograder.tools.similarity.fingerprint import bound_names  # noqa: E402

ASSIGNMENT, NOTEBOOK = "02_batchnorm_forward", "batchnorm_forward.ipynb"
RELEASE = ROOT / "release" / ASSIGNMENT / NOTEBOOK


def pool() -> dict[str, list[str]]:
    """Every answer the course has for each answer cell of 02."""
    from diagnoses import forward

    answers: dict[str, list[str]] = {}
    for student in samples.STUDENTS.values():
        for cell, source in student["answers"].items():
            if not cell.startswith("answer_"):
                answers.setdefault(cell, []).append(source)
    for fixture in [*forward.MISTAKES, *forward.ALTERNATIVES]:
        answers.setdefault(fixture.function, []).append(fixture.source)
    source = nbformat.read(ROOT / "source" / ASSIGNMENT / NOTEBOOK, as_version=4)
    for cell in source.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "code":
            answers.setdefault(meta["grade_id"], []).append(
                re.sub(r"^\s*### (BEGIN|END) SOLUTION\n", "", cell.source, flags=re.M))
    return answers


def renamed(source: str, rng: random.Random) -> str:
    """``source`` with every local variable renamed (parameters and function names kept)."""
    names = bound_names(source) or set()
    keep = set()
    for name, params in re.findall(r"def (\w+)\(([^)]*)\)", source):
        keep.add(name)
        keep.update(re.findall(r"[A-Za-z_]\w*", params))
    mapping = {n: f"{n}_{rng.randrange(1000)}" for n in names - keep}
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        out.append((tok.type, mapping.get(tok.string, tok.string)
                    if tok.type == tokenize.NAME else tok.string))
    return tokenize.untokenize(out)


def make_course(root: Path, n: int, answers: dict[str, list[str]], seed: int = 0) -> Path:
    """A scratch course directory with ``n`` autograded submissions of 02."""
    rng = random.Random(seed)
    (root / "release" / ASSIGNMENT).mkdir(parents=True)
    (root / "release" / ASSIGNMENT / NOTEBOOK).write_bytes(RELEASE.read_bytes())
    (root / "nbgrader_config.py").write_text(
        f'ASSIGNMENTS = {{"{ASSIGNMENT}": "{NOTEBOOK}"}}\nc = get_config()\n')
    for i in range(n):
        chosen = {cell: renamed(rng.choice(options), rng) for cell, options in answers.items()}
        folder = root / "autograded" / f"student{i:03d}" / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(build_submission(RELEASE, chosen), folder / NOTEBOOK)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200])
    args = parser.parse_args(argv)
    answers = pool()
    print(f"answers per cell: { {k: len(v) for k, v in answers.items()} }")
    from autograder.course_dir import course_directory

    course_directory(ROOT)  # imports nbgrader once, before any timing (a cold start, not the work)
    rows = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            course = make_course(Path(tmp), n, answers)
            start, cpu = time.perf_counter(), time.process_time()
            result = similarity.compare(ASSIGNMENT, course)
            similarity.write(result, course / "reports" / ASSIGNMENT)
            rows.append((n, len(result.pairs), time.perf_counter() - start,
                         time.process_time() - cpu))
    base = rows[0]
    print(f"\n{'submissions':>11} {'pairs':>7} {'wall [s]':>9} {'CPU [s]':>8} {'CPU us/pair':>11} "
          f"{'CPU ratio':>9} {'pairs ratio':>11}")
    for n, pairs, wall, cpu in rows:
        print(f"{n:>11} {pairs:>7} {wall:>9.2f} {cpu:>8.2f} {1e6 * cpu / max(pairs, 1):>11.0f} "
              f"{cpu / base[3]:>9.2f} {pairs / max(base[1], 1):>11.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
