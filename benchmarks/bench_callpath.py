"""What the trusted call path costs: a hidden check run in the grader vs inside the kernel.

The hidden checks run in the trusted grading process and call the student's functions in the
kernel with plain serialized data (autograder/kernel/remote.py). Before, the whole check ran in
the kernel. This benchmark measures both, side by side in one run, on the same kernel (a plain
``ipykernel``, unsandboxed, so that only the call path differs), for every hidden check of
assignments 01-03 with the correct demo sample's answers:

* ``in kernel``: the hidden test cell executed in the kernel (the old design);
* ``trusted``: the check run here, each call of the student's function a request to the kernel.

It prints seconds per check for both, the ratio, the number of kernel round trips, and the
totals per notebook. ``--repeats R`` (default 3) keeps the fastest of R runs of each.

    python benchmarks/bench_callpath.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "tests"))

from kernels import kernel_channel  # noqa: E402

from autograder import notebooks  # noqa: E402
from autograder.course_dir import assignments  # noqa: E402
from autograder.kernel.remote import run_hidden_cell  # noqa: E402
from autograder.tools.demo import build_submission, load_samples  # noqa: E402

NOTEBOOKS = ("01_standardization", "02_batchnorm_forward", "03_batchnorm_backward")


def _fastest(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    table = assignments(ROOT)
    print(f"{'check':<36} {'in kernel':>10} {'trusted':>10} {'ratio':>6} {'calls':>6}")
    with kernel_channel(timeout=120) as (channel, run):
        for assignment in NOTEBOOKS:
            nb_name = table[assignment]
            answers = load_samples(nb_name).STUDENTS["ada"]["answers"]
            nb = build_submission(ROOT / "source" / assignment / nb_name, answers)
            run("%reset -f")
            for cell in nb.cells:
                if cell.cell_type == "code" and not notebooks.is_test_cell(cell):
                    run(cell.source)
            totals = [0.0, 0.0]
            for cell in notebooks.test_cells(nb):
                source = "\n".join(line for line in cell.source.splitlines()
                                   if not line.startswith("#"))
                points = float(cell.metadata["nbgrader"]["points"])
                old = _fastest(lambda s=source: run(s), args.repeats)
                before = channel.calls
                new = _fastest(lambda s=source, p=points: run_hidden_cell(s, p, channel),
                               args.repeats)
                calls = (channel.calls - before) // args.repeats
                totals[0] += old
                totals[1] += new
                name = cell.metadata["nbgrader"]["grade_id"]
                print(f"{name:<36} {old:>9.3f}s {new:>9.3f}s {new / old:>5.1f}x {calls:>6}")
            print(f"{assignment + ' (all hidden cells)':<36} {totals[0]:>9.3f}s "
                  f"{totals[1]:>9.3f}s {totals[1] / totals[0]:>5.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
