"""Time the reference BatchNorm forward+backward against a staged version and a copy.

Run from the repository root::

    .venv/bin/python benchmarks/bench_batchnorm.py            # the full table (about a minute)
    .venv/bin/python benchmarks/bench_batchnorm.py --quick    # fewer repeats

For each (N, D) and dtype it measures, interleaved in one run and as the minimum over repeats:

* ``reference``: ``autograder.reference.batchnorm_forward`` then ``batchnorm_backward``;
* ``staged``: the straightforward CS231n-style forward and backward below, one temporary per
  node of the graph (the version notebook 03 teaches, and the fair baseline);
* ``copyto``: ``np.copyto`` of one (N, D) array, a lower bound for anything that must at least
  read and write the activations once.

Ratios are ``staged / reference`` (the speedup) and ``reference / copyto`` (how many array
copies the reference costs). Timings are wall-clock, single process, on whatever machine runs
this; compare the ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from autograder import reference  # noqa: E402

SHAPES = [(1024, 4096), (64, 256)]
DTYPES = [np.float64, np.float32]


def staged_forward(x, gamma, beta, eps=1e-5):
    """Train-mode forward, one line per node (Kratzert 2016's graph)."""
    N = x.shape[0]
    mu = 1.0 / N * np.sum(x, axis=0)
    xmu = x - mu
    sq = xmu**2
    var = 1.0 / N * np.sum(sq, axis=0)
    sqrtvar = np.sqrt(var + eps)
    ivar = 1.0 / sqrtvar
    xhat = xmu * ivar
    gammax = gamma * xhat
    out = gammax + beta
    return out, (xhat, gamma, xmu, ivar, sqrtvar, var, eps)


def staged_backward(dout, cache):
    """The matching backward, visiting the nodes in reverse order."""
    xhat, gamma, xmu, ivar, sqrtvar, var, eps = cache
    N, D = dout.shape
    dbeta = np.sum(dout, axis=0)
    dgammax = dout
    dgamma = np.sum(dgammax * xhat, axis=0)
    dxhat = dgammax * gamma
    divar = np.sum(dxhat * xmu, axis=0)
    dxmu1 = dxhat * ivar
    dsqrtvar = -1.0 / (sqrtvar**2) * divar
    dvar = 0.5 * 1.0 / np.sqrt(var + eps) * dsqrtvar
    dsq = 1.0 / N * np.ones((N, D), dtype=dout.dtype) * dvar
    dxmu2 = 2 * xmu * dsq
    dx1 = dxmu1 + dxmu2
    dmu = -1 * np.sum(dx1, axis=0)
    dx2 = 1.0 / N * np.ones((N, D), dtype=dout.dtype) * dmu
    dx = dx1 + dx2
    return dx, dgamma, dbeta


def run_reference(x, gamma, beta, dout):
    _, cache = reference.batchnorm_forward(x, gamma, beta, {"mode": "train"})
    return reference.batchnorm_backward(dout, cache)


def run_staged(x, gamma, beta, dout):
    _, cache = staged_forward(x, gamma, beta)
    return staged_backward(dout, cache)


def measure(shape, dtype, repeats: int, seed: int = 0) -> dict[str, float]:
    """Minimum wall time of each contender, interleaved round by round."""
    rng = np.random.default_rng(seed)
    N, D = shape
    x = (rng.normal(size=shape) * 3 + 10).astype(dtype)
    dout = rng.normal(size=shape).astype(dtype)
    gamma = rng.uniform(0.5, 2, D).astype(dtype)
    beta = rng.normal(size=D).astype(dtype)
    dst = np.empty_like(x)
    contenders = {
        "reference": lambda: run_reference(x, gamma, beta, dout),
        "staged": lambda: run_staged(x, gamma, beta, dout),
        "copyto": lambda: np.copyto(dst, x),
    }
    # Same answer, or the timing means nothing.
    ref, stg = contenders["reference"](), contenders["staged"]()
    tol = 1e-9 if dtype == np.float64 else 1e-3
    for a, b in zip(ref, stg, strict=True):
        scale = float(np.max(np.abs(b))) or 1.0
        assert np.allclose(a, b, rtol=tol, atol=tol * scale), "reference and staged disagree"
    number = max(1, int(2e7 // (N * D)))  # about 20 M elements per timing, enough for small shapes
    best = {k: float("inf") for k in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / number)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="rounds; the minimum is kept")
    parser.add_argument("--quick", action="store_true", help="5 rounds instead of 15")
    args = parser.parse_args(argv)
    repeats = 5 if args.quick else args.repeats
    print(f"numpy {np.__version__}; min of {repeats} interleaved rounds; times in ms per call")
    header = f"{'N x D':>12} {'dtype':>8} {'reference':>10} {'staged':>10} {'copyto':>10}"
    header += f" {'staged/ref':>11} {'ref/copyto':>11}"
    print(header)
    print("-" * len(header))
    for shape in SHAPES:
        for dtype in DTYPES:
            t = measure(shape, dtype, repeats)
            print(
                f"{shape[0]:>5} x {shape[1]:<5} {np.dtype(dtype).name:>8} "
                f"{t['reference'] * 1e3:>10.3f} {t['staged'] * 1e3:>10.3f} {t['copyto'] * 1e3:>10.3f} "
                f"{t['staged'] / t['reference']:>10.2f}x {t['reference'] / t['copyto']:>10.1f}x"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
