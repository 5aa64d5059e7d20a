"""
Benchmarks: prints the figures the issues ask for.

    python bench.py                 # everything
    python bench.py train bnsl      # only some sections (train, record, bnsl, zsl)

Each section is a plain function that prints its own lines. Times are wall-clock
medians over a few repeats, on whatever threads torch uses (set OMP_NUM_THREADS to pin).
"""
import sys
import time


def median_time(fn, repeats=5, warmup=1):
    """Median wall-clock seconds of fn() over `repeats` calls, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def bench_train():
    raise NotImplementedError  # BENCH-TRAIN


def bench_record():
    raise NotImplementedError  # BENCH-RECORD


def bench_bnsl():
    """One 1-break BNSL fit of a ~500-point noisy synthetic curve, from no initial guess (<= 30 ms)."""
    import os
    import numpy as np
    import bnsl
    steps = np.unique(np.geomspace(10, 100_000, 560).round())
    # L(t) = b t^-c0 (1 + (t/d1)^(1/f1))^(-c1 f1), b=6, c0=0.12, c1=-0.09, d1=300, f1=0.3, 0.5 % noise
    losses = 6.0 * steps ** -0.12 * (1 + (steps / 300.0) ** (1 / 0.3)) ** (0.09 * 0.3)
    losses *= np.exp(0.005 * np.random.default_rng(0).standard_normal(len(steps)))
    seconds = median_time(lambda: bnsl.fit_bnsl(steps, losses, breaks=1), repeats=21)
    fit = bnsl.fit_bnsl(steps, losses, breaks=1)
    threads = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or "all cores"
    print(f"bnsl: {seconds * 1e3:.1f} ms per fit of {len(steps)} points (target <= 30 ms; median of 21; "
          f"numpy BLAS threads: {threads}; fitted t_d={fit['t_d']:.0f} vs true 300)")


def bench_zsl():
    raise NotImplementedError  # BENCH-ZSL


SECTIONS = {"train": bench_train, "record": bench_record, "bnsl": bench_bnsl, "zsl": bench_zsl}

if __name__ == "__main__":
    names = sys.argv[1:] or list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        sys.exit(f"bench.py: error: unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    for name in names:
        print(f"== {name}")
        SECTIONS[name]()
