"""
Several seeds of the same experiment, seen together.

    python seeds.py report_s1337 report_s2 report_s3       # reproduce.py outputs, one seed each
    python seeds.py report/seed_* --out_dir=report_seeds

reproduce.py --seeds=1337,2,3 calls this on its own per-seed directories; given by hand, it
reads any reproduce.py output directories of the same experiment (summary.json and runs/).

THE RULE FOR SEVERAL SEEDS (written before any run of several seeds; not tuned afterwards).
Each seed's finding is judged by reproduce.py's rule: it holds, does not hold, or was not
judged. Across N seeds, with k = the seeds on which it holds and m = those on which it does not:

    holds          if k >= floor(N/2) + 1        a strict majority: 2 of 2, 2 of 3, 3 of 4, 3 of 5
    does not hold  if m >= N - floor(N/2)        no majority is possible any more
    not judged     otherwise                      too many seeds could not be judged to decide

Every finding reads "holds on k of N seeds", with each seed's numbers beside it.
"""


HOLDS, FAILS, NOT_JUDGED = "holds", "does not hold", "not judged"


def majority(states):
    """The verdict across seeds: (state, k, N) by the rule in the module docstring.
    states: one of HOLDS / FAILS / NOT_JUDGED per seed. Raises ValueError on an empty list."""
    n = len(states)
    if n == 0:
        raise ValueError("no seeds to judge")
    k, m = states.count(HOLDS), states.count(FAILS)
    needed = n // 2 + 1                       # a strict majority of n
    if k >= needed:
        return HOLDS, k, n
    if m >= n - n // 2:                       # then k <= n // 2 whatever the rest would have been
        return FAILS, k, n
    return NOT_JUDGED, k, n
