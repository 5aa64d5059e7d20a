"""job_pool.py: how many workers and threads, the progress display, jobs in order of their needs."""
import io

import pytest

from support import job_pool


@pytest.mark.parametrize("n_jobs, device, jobs, cores, expected", [
    (3, "cpu", 0, 2, (2, 1)),        # every core busy, one thread each
    (9, "cpu", 0, 8, (8, 1)),
    (3, "cpu", 0, 8, (3, 2)),        # more cores than jobs: the spare ones become threads
    (6, "cpu", 1, 2, (1, 2)),        # --jobs=1: one at a time, in this process, on every core
    (6, "cuda", 0, 8, (1, None)),    # a GPU: one job at a time, torch's threads
])
def test_plan_workers(n_jobs, device, jobs, cores, expected):
    workers, threads, why = job_pool.plan_workers(n_jobs, device, jobs, cores=cores)
    assert (workers, threads) == expected
    assert f"{n_jobs} jobs" in why


def two_jobs(log=None):
    return [job_pool.Job("a", record_job, ("a",), [("train", 3.0), ("analyse", 1.0)], log=log),
            job_pool.Job("b", record_job, ("b",), [("report", 4.0)], after=("a",))]


CALLS = []


def record_job(name, report):
    CALLS.append(name)
    for phase, total in (("train", 2), ("analyse", 1)) if name == "a" else (("report", 1),):
        for done in range(total + 1):
            report(phase, done, total)
    print(f"{name} printed this")
    return name.upper()


def test_jobs_run_in_the_order_they_need_and_report_one_line_per_phase_when_not_a_terminal(tmp_path):
    CALLS.clear()
    stream = io.StringIO()   # not a terminal: no bar, one line per finished phase
    results = job_pool.run_jobs(two_jobs(log=str(tmp_path / "job.log")), workers=1, threads=1, stream=stream)
    assert results == {"a": "A", "b": "B"} and CALLS == ["a", "b"]
    lines = stream.getvalue().splitlines()
    assert [line.split("] ")[1].split(" done")[0] for line in lines] == ["a: train", "a: analyse", "b: report"]
    assert "1 of 3 phases; about" in lines[0] and lines[-1].endswith("(3 of 3 phases)")
    assert "\r" not in stream.getvalue()
    assert (tmp_path / "job.log").read_text() == "a printed this\n"   # what a job prints goes to its log


def test_a_job_listed_before_what_it_needs_is_refused():
    jobs = two_jobs()
    with pytest.raises(ValueError, match="listed before a"):
        job_pool.run_jobs(jobs[::-1], workers=1, threads=1, stream=io.StringIO())


def test_progress_weighs_phases_by_their_work_and_leaves_out_what_was_done_before():
    progress = job_pool.Progress(two_jobs(), stream=io.StringIO())
    progress.update("a", "train", 0, 2)                 # a phase's first report is where it starts
    progress.update("a", "train", 1, 2)                 # half of 3 units
    assert progress.bar.n == pytest.approx(1.5) and progress.bar.total == pytest.approx(8.0)
    progress.update("b", "report", 1, 1, "reused")      # done before this run: no work now
    assert progress.bar.total == pytest.approx(4.0) and progress.bar.n == pytest.approx(1.5)
    assert "b: report done in 0 s, reused" in progress.stream.getvalue()
    progress.update("a", "analyse", 1, 4)               # resumed at 1 of 4: 3/4 of its work is left
    assert progress.work[("a", "analyse")] == pytest.approx(0.75)
    progress.close()


POOL_SCRIPT = """
import os, sys, time
sys.path[:0] = [{root!r}, {here!r}]
from support import job_pool
import sleepy
jobs = [job_pool.Job(f"sleep {{k}}", sleepy.sleep_job, ({pids!r},), [("sleep", 1.0)]) for k in range(2)]
job_pool.run_jobs(jobs, workers=2, threads=1, stream=open(os.devnull, "w"))
"""


def test_workers_end_when_their_main_process_is_killed(tmp_path):
    """kill -9 of reproduce.py's main process cannot stop its workers (they have their own process
    group): each must notice its parent is gone and end by itself, not train on for nobody."""
    import os, signal, subprocess, sys, time
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    (tmp_path / "sleepy.py").write_text(
        "import os, time\n"
        "def sleep_job(pids, report):\n"
        "    with open(pids, 'a') as f:\n"
        "        f.write(f'{os.getpid()}\\n')\n"
        "    time.sleep(120)\n")
    pids = tmp_path / "pids.txt"
    script = POOL_SCRIPT.format(root=root, here=str(tmp_path), pids=str(pids))
    main = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path)
    deadline = time.time() + 60
    while time.time() < deadline and (not pids.exists() or len(pids.read_text().split()) < 2):
        time.sleep(0.2)
    workers = [int(p) for p in pids.read_text().split()]
    assert len(workers) == 2
    main.send_signal(signal.SIGKILL)
    main.wait()
    deadline = time.time() + 15
    alive = workers
    while alive and time.time() < deadline:
        time.sleep(0.2)
        alive = [p for p in workers if os.path.exists(f"/proc/{p}") and
                 open(f"/proc/{p}/stat").read().split()[2] != "Z"]
    for p in alive:  # (do not leave them behind if the test fails)
        os.kill(p, signal.SIGKILL)
    assert not alive, f"workers {alive} outlived their main process"
