"""
Independent jobs on every core, with one progress display for the whole set (reproduce.py uses it).

    workers, threads, why = plan_workers(n_jobs, device, jobs=0)
    results = run_jobs([Job(key, function, args, phases, after), ...], workers, threads)

A training step of a small model is as fast on one thread as on two: its matrices are too small
for threads to share the work, and on a busy machine a second thread waits for a core (one
checkpoint's gradient analysis took 241 s on 1 process x 2 threads against 10-12 s on 1 thread
while the cores were shared; a training step of 1x32 ... 6x384 at vocabulary 2 048, batch 32x64,
took 0.07-0.5 times as long on one thread as on two, alternated in one process, 2 shared cores). So on the CPU each worker process runs one job at a time on one
torch thread, and there are as many workers as cores; only when there are fewer jobs than cores
do the spare cores become threads. On a GPU the jobs run one at a time.

A job is a module-level function called as function(*args, report=report) in a worker, where
report(phase, done, total, note=None) tells the main process how far its current phase is.
Job.phases lists (phase, work): the expected cost of each phase in any one unit (reproduce.py:
floating-point operations), so that the bar's fraction and its ETA weigh a big model's step more
than a small one's. A job starts once the jobs named in Job.after have finished.

On a terminal the display is one labelled bar for the whole set (percent of the expected work,
elapsed, ETA, and each running job's phase), with one line above it per finished phase; when the
output is not a terminal (a log file) there is no bar, only those lines, each with the ETA.

Ctrl-C (or SIGTERM to the main process): every worker is sent SIGTERM once -- train.py saves its
step and stops; a worker between steps stops at once -- and run_jobs raises KeyboardInterrupt
when they have ended. A job's exception is raised in the main process the same way, after the
other workers have been stopped.
"""
import concurrent.futures
import contextlib
import dataclasses
import multiprocessing
import os
import queue as queue_module
import signal
import sys
import threading
import time

from tqdm import tqdm


@dataclasses.dataclass
class Job:
    key: str                   # what the display calls it, e.g. "2x64 seed 1337"; unique
    function: object           # a module-level function: function(*args, report=report)
    args: tuple
    phases: list               # [(phase, expected work)], in the order the job runs them
    after: tuple = ()          # keys of the jobs that must finish first
    log: str = None            # a file for what the job prints (default: the terminal)


def cpu_cores():
    """The cores this process may use (its CPU affinity where the OS has one, else os.cpu_count())."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def plan_workers(n_jobs, device, jobs=0, cores=None):
    """(workers, torch threads per worker or None for torch's choice, one line saying why).
    jobs > 0 asks for that many workers; one worker means one job at a time in this process."""
    cores = cores or cpu_cores()
    if device not in ("cpu", "auto") and not jobs:
        return 1, None, f"{n_jobs} jobs one at a time on {device}, in this process (they share the device)"
    workers = max(1, min(jobs or cores, n_jobs))
    threads = max(1, cores // workers)
    asked = f", --jobs={jobs}" if jobs else ""
    if workers == 1:
        return 1, threads, (f"{n_jobs} jobs one at a time in this process on {threads} torch thread"
                            f"{'s' if threads > 1 else ''} ({cores} CPU core{'s' if cores > 1 else ''}{asked})")
    why = (f"{n_jobs} jobs on {workers} worker processes x {threads} torch thread{'s' if threads > 1 else ''} "
           f"({cores} CPU cores{asked}")
    if jobs:
        return workers, threads, why + ")"
    return workers, threads, why + ("; one single-threaded job per core: a small model's step is as fast on one "
                                    "thread as on two)" if threads == 1 else "; the spare cores become threads)")


# ---------------------------------------------------------------------------------------------
# In the worker processes

_QUEUE = None   # the worker's end of the progress queue
_BUSY = False   # is the worker running a job?


def _start_worker(progress_queue, threads):
    """Each worker: its own process group (the terminal's Ctrl-C goes to the main process only, which
    stops the workers once, by SIGTERM), SIGTERM between training steps = KeyboardInterrupt, threads."""
    global _QUEUE
    _QUEUE = progress_queue
    os.setpgrp()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _interrupt)
    if threads:
        import torch
        torch.set_num_threads(threads)
    parent = os.getppid()

    def end_with_parent():  # a main process killed outright (kill -9, a crash) cannot stop its workers: they
        while os.getppid() == parent:  # notice it here and end too, instead of training on for nobody
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=end_with_parent, daemon=True).start()
    progress_queue.put(("pid", os.getpid()))


def _interrupt(signum, frame):
    if _BUSY or _QUEUE is None:   # in a job, or in the main process
        raise KeyboardInterrupt
    sys.exit(0)                   # an idle worker just ends


def _run_in_worker(key, function, args, log):
    global _BUSY

    def report(phase, done, total, note=None):
        _QUEUE.put(("progress", key, phase, done, total, note))
    _BUSY = True
    try:
        if log is None:
            return function(*args, report=report)
        with open(log, "a", encoding="utf-8") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
            return function(*args, report=report)
    finally:
        _BUSY = False


# ---------------------------------------------------------------------------------------------
# In the main process

def _duration(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


class Progress:
    """The display: a bar over the expected work of every phase of every job (on a terminal), and
    one line per finished phase with the time left at the average rate so far (always)."""

    def __init__(self, jobs, stream=None):
        self.stream = stream or sys.stderr
        self.work = {(job.key, phase): float(work) for job in jobs for phase, work in job.phases}
        self.done = dict.fromkeys(self.work, 0.0)
        self.running, self.offset, self.began, self.finished = {}, {}, {}, set()
        self.started = time.time()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.bar = tqdm(total=sum(self.work.values()), file=self.stream, disable=not self.tty, smoothing=0, dynamic_ncols=True,
                        desc="reproduce", bar_format="{desc}: {percentage:3.0f}%|{bar:20}| {elapsed}<{remaining} {postfix}")

    def update(self, key, phase, done, total, note=None):
        """A job's report: phase is at done of total. What was done before this run (a resumed or
        reused run) is no work now: the first report of a phase takes it out of the expected work."""
        if (key, phase) not in self.offset:
            self.offset[(key, phase)], self.began[(key, phase)] = done, time.time()
            if total:
                self.work[(key, phase)] = self.work.get((key, phase), 0.0) * (total - done) / total
        offset, work = self.offset[(key, phase)], self.work.get((key, phase), 0.0)
        self.done[(key, phase)] = work * (done - offset) / (total - offset) if total > offset else work
        if done >= total:
            self.finished.add((key, phase))
            self.running.pop(key, None)
            took = _duration(time.time() - self.began[(key, phase)])
            self.say(f"{key}: {phase} done in {took}{f', {note}' if note else ''}")
        else:
            self.running[key] = f"{key}: {phase} {done}/{total}"
        self.bar.total, self.bar.n = sum(self.work.values()), sum(self.done.values())
        self.bar.set_postfix_str(" | ".join(self.running.values()), refresh=True)

    def eta(self):
        done, total = sum(self.done.values()), sum(self.work.values())
        if done <= 0 or done >= total:
            return ""
        return f"; about {_duration((time.time() - self.started) * (total - done) / done)} left"

    def say(self, text):
        phases = sum(1 for k in self.work if self.done[k] >= self.work[k])
        line = (f"[{_duration(time.time() - self.started):>10}] {text} ({phases} of {len(self.work)} "
                f"phases{self.eta()})")
        if self.tty:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def close(self):
        self.bar.close()


def _drain(progress_queue, progress, pids):
    while True:
        try:
            message = progress_queue.get_nowait()
        except queue_module.Empty:
            return
        if message[0] == "pid":
            pids.add(message[1])
        else:
            progress.update(*message[1:])


def _stop_workers(pids):
    for pid in pids:   # only the worker processes this pool started
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def run_jobs(jobs, workers, threads, stream=None):
    """Run the jobs (dependencies first), showing progress; returns {key: result}. Raises the first
    job's exception, or KeyboardInterrupt on Ctrl-C / SIGTERM, after stopping every worker. With one
    worker the jobs run one after the other in this process (no pool: plain tracebacks, one device)."""
    progress = Progress(jobs, stream)
    previous_term = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return (_run_here if workers == 1 else _run_on_pool)(jobs, workers, threads, progress)
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        progress.close()


def _run_here(jobs, workers, threads, progress):
    if threads:
        import torch
        torch.set_num_threads(threads)
    results = {}
    for job in jobs:   # in the given order, which must put each job after the jobs it needs
        missing = [key for key in job.after if key not in results]
        if missing:
            raise ValueError(f"job {job.key} is listed before {missing[0]}, which it needs")
        report = lambda phase, done, total, note=None, key=job.key: progress.update(key, phase, done, total, note)  # noqa: E731
        if job.log is None:
            results[job.key] = job.function(*job.args, report=report)
            continue
        with open(job.log, "a", encoding="utf-8") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
            results[job.key] = job.function(*job.args, report=report)
    return results


def _run_on_pool(jobs, workers, threads, progress):
    context = multiprocessing.get_context("spawn")   # fresh interpreters: no forked torch threads
    progress_queue, pids, results = context.Queue(), set(), {}
    waiting, running = list(jobs), {}
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                                initargs=(progress_queue, threads)) as pool:
        try:
            while waiting or running:
                for job in [j for j in waiting if all(k in results for k in j.after)]:
                    waiting.remove(job)
                    running[pool.submit(_run_in_worker, job.key, job.function, job.args, job.log)] = job
                finished, _ = concurrent.futures.wait(running, timeout=0.5,
                                                      return_when=concurrent.futures.FIRST_COMPLETED)
                _drain(progress_queue, progress, pids)
                for future in finished:
                    results[running.pop(future).key] = future.result()   # raises the job's exception
        except BaseException:
            _drain(progress_queue, progress, pids)
            _stop_workers(pids)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return results
