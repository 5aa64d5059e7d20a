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
    raise NotImplementedError  # BENCH-BNSL


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
