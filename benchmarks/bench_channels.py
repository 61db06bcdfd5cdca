"""What the bounded channels cost: the same kernel traffic through jupyter_client's own client
and through the grader's (every socket behind the relay, autograder/kernel/channels.py and
relay.py), side by side in one run, each on a fresh plain ``ipykernel`` (unsandboxed, so that
only the client differs):

* ``round trip``: one hidden-check request of a tiny function (the unit of a hidden check);
* ``hidden checks NN``: every hidden check of assignment NN with the correct sample's answers;
* ``output``: a cell that prints 2,000 lines and displays 20 outputs of 1 MiB.

It prints seconds for both, and the ratio. ``--repeats R`` (default 3) keeps the fastest of R,
the two kernels taking turns.

    python benchmarks/bench_channels.py [--repeats 3]
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
from autograder.kernel.remote import KernelFunction, run_hidden_cell  # noqa: E402
from autograder.tools.demo import build_submission, load_samples  # noqa: E402

NOTEBOOKS = ("01_standardization", "02_batchnorm_forward")
OUTPUT = ("from IPython.display import display\n"
          "for i in range(2000):\n    print('line', i)\n"
          "for _ in range(20):\n    display({'text/plain': 'y' * 2**20}, raw=True)\n")


def _workloads(channel, run) -> dict:
    """Each workload, ready to run on this kernel (its notebook state set up)."""
    table = assignments(ROOT)
    run("def tiny(x):\n    return x")
    tiny = KernelFunction(channel, "tiny")

    def round_trips():
        channel.start_check()  # a fresh time budget, as each hidden check gets
        for _ in range(100):
            tiny(1.0)

    work = {"round trip (x100)": round_trips}
    for assignment in NOTEBOOKS:
        nb = build_submission(ROOT / "source" / assignment / table[assignment],
                              load_samples(table[assignment]).STUDENTS["ada"]["answers"])
        for cell in nb.cells:  # each notebook's functions under their own names
            if cell.cell_type == "code" and not notebooks.is_test_cell(cell):
                run(cell.source)
        cells = [("\n".join(line for line in c.source.splitlines() if not line.startswith("#")),
                  float(c.metadata["nbgrader"]["points"])) for c in notebooks.test_cells(nb)]
        work[f"hidden checks {assignment[:2]}"] = (
            lambda cells=cells: [run_hidden_cell(s, p, channel) for s, p in cells])
    work["output"] = lambda: run(OUTPUT)
    return work


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    best: dict[tuple[str, bool], float] = {}
    with kernel_channel(timeout=120) as plain, kernel_channel(timeout=120, bounded=True) as ours:
        sides = {False: _workloads(*plain), True: _workloads(*ours)}
        for _ in range(args.repeats):  # alternating, so both see the same load on the machine
            for bounded, work in sides.items():
                for name, fn in work.items():
                    start = time.perf_counter()
                    fn()
                    seconds = time.perf_counter() - start
                    best[name, bounded] = min(best.get((name, bounded), seconds), seconds)
    print(f"{'workload':<24} {'plain':>9} {'bounded':>9} {'ratio':>6}")
    for name in sides[False]:
        print(f"{name:<24} {best[name, False]:>8.3f}s {best[name, True]:>8.3f}s "
              f"{best[name, True] / best[name, False]:>5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
