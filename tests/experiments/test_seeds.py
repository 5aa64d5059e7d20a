"""seeds.py: the majority rule across seeds."""
import itertools

import pytest

from experiments import seeds
from experiments.seeds import FAILS, HOLDS, NOT_JUDGED


@pytest.mark.parametrize("states, verdict", [
    ([HOLDS, HOLDS], HOLDS),                         # 2 of 2
    ([HOLDS, FAILS], FAILS),                         # 1 of 2: no majority possible
    ([HOLDS, NOT_JUDGED], NOT_JUDGED),               # the unjudged seed could still decide it
    ([HOLDS, HOLDS, FAILS], HOLDS),                  # 2 of 3
    ([HOLDS, FAILS, NOT_JUDGED], NOT_JUDGED),
    ([FAILS, FAILS, HOLDS], FAILS),
    ([NOT_JUDGED] * 3, NOT_JUDGED),
    ([HOLDS, HOLDS, FAILS, FAILS], FAILS),           # 2 of 4 is no majority
    ([HOLDS, HOLDS, HOLDS, FAILS, NOT_JUDGED], HOLDS),
])
def test_majority_of_seeds(states, verdict):
    assert seeds.majority(states) == (verdict, states.count(HOLDS), len(states))


def test_majority_against_counting_every_completion_of_the_unjudged_seeds():
    """Reference: a finding holds / does not hold when every way the unjudged seeds could have
    come out gives the same strict-majority answer; else it is not judged."""
    for n in range(1, 6):
        for states in itertools.product((HOLDS, FAILS, NOT_JUDGED), repeat=n):
            unjudged = states.count(NOT_JUDGED)
            outcomes = {states.count(HOLDS) + extra > n / 2 for extra in range(unjudged + 1)}
            expected = NOT_JUDGED if len(outcomes) == 2 else (HOLDS if outcomes == {True} else FAILS)
            assert seeds.majority(list(states))[0] == expected, states
    with pytest.raises(ValueError):
        seeds.majority([])


def test_a_folder_that_is_not_a_reproduce_run_is_one_plain_line(tmp_path, capsys):
    for folders, expected in (([str(tmp_path), str(tmp_path)], "holds no summary.json"),
                              ([str(tmp_path / "nope"), str(tmp_path)], "no such directory")):
        assert seeds.main(folders) == 2
        err = capsys.readouterr().err
        assert err.startswith("seeds.py: error: ") and err.count("\n") == 1 and expected in err
        assert "Errno" not in err and "Error:" not in err.split("error:", 1)[1]
