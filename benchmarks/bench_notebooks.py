"""How long each notebook takes to run, and its kernel's peak memory, on one core.

    python benchmarks/bench_notebooks.py [ASSIGNMENT ...]

Runs every source notebook (the solutions filled in, as a student who finished would run it)
top to bottom with nbclient, twice: as a student runs it, and as ``nbgrader autograde`` does,
with ``NBGRADER_EXECUTION=autograde`` (assignment 04 then runs its reduced sweeps). Each run is a
fresh process pinned to one CPU (``os.sched_setaffinity``) with one BLAS thread, like a Binder
session; peak memory is the kernel's maximum resident set size (``getrusage(RUSAGE_CHILDREN)``,
Linux reports it in KiB), and its CPU time (user + system, ``RUSAGE_CHILDREN``), which a shared
machine disturbs less than the wall time. Budgets: 90 s and 1 GB for a student, 30 s under
autograde.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run_one(path: str, autograde: bool) -> dict:
    """Execute one notebook in this process (called in a fresh subprocess); return measurements."""
    import nbformat
    from nbclient import NotebookClient

    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    os.environ.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    os.environ.pop("MPLBACKEND", None)
    if autograde:
        os.environ["NBGRADER_EXECUTION"] = "autograde"
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(Path(path).parent)}}).execute()
    seconds = time.perf_counter() - start
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the kernel, once it has exited
    return {"seconds": seconds, "cpu_seconds": children.ru_utime + children.ru_stime,
            "peak_mb": children.ru_maxrss / 1024}


def main(argv: list[str]) -> int:
    from autograder.course_dir import assignments as load_assignments

    assignments = load_assignments()
    chosen = argv or list(assignments)
    print(f"{'notebook':<28} {'as a student (CPU)':>22} {'peak memory':>12} "
          f"{'under autograde (CPU)':>24}")
    for assignment in chosen:
        path = ROOT / "source" / assignment / assignments[assignment]
        row = []
        for autograde in (False, True):
            out = subprocess.run(
                [sys.executable, __file__, "--one", str(path), str(int(autograde))],
                capture_output=True, text=True, check=True,
            )
            row.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"{assignment:<28} {row[0]['seconds']:>9.1f} s ({row[0]['cpu_seconds']:>5.1f} s) "
              f"{row[0]['peak_mb']:>9.0f} MB {row[1]['seconds']:>11.1f} s "
              f"({row[1]['cpu_seconds']:>5.1f} s)", flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (on {os.cpu_count()} CPUs); "
          "every run is pinned to one CPU")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        print(json.dumps(run_one(sys.argv[2], bool(int(sys.argv[3])))))
    else:
        raise SystemExit(main(sys.argv[1:]))
