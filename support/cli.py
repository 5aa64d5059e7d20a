"""
The command line of every tool: bad input is one line, never a traceback.

    UsageError        the one exception for bad input: its message says what is wrong and how to fix it
    OneLineParser     argparse, with its errors as one line that points to --help
    guarded(prog, main, *args)
                      runs main(*args) and turns every way it can end into one line and an exit status
    stop_signals()    a long loop's way to stop cleanly: Ctrl-C or SIGTERM asks it to stop after this step
    quiet_ctrl_c_while_loading(prog)
                      called first thing by a tool run as a script: Ctrl-C while torch and numpy load
                      (a second or more) ends it with "PROG: interrupted" and 130, not a traceback

Exit statuses, the same for every tool:
    0    done
    1    the reader of our output went away (`python bnsl.py RUN | head -1`): nothing more to say
    2    bad input (UsageError, or argparse), a file problem (OSError: a full disk, no permission),
         or out of memory
    130  Ctrl-C (SIGINT)        143  SIGTERM (what a cluster scheduler sends)
Under torchrun every process meets the same error; only rank 0 prints it.
"""
import argparse
import contextlib
import os
import signal
import sys


class UsageError(ValueError):
    """Bad input the user can fix: reported as one line, without a traceback. The message names the
    problem and the fix (a flag, a file, a command)."""


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line: "PROG: error: MESSAGE (see python COMMAND --help)", status 2.
    command: how the tool is run from the repository's top directory (default: prog)."""

    def __init__(self, *args, command=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.command = command or self.prog

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see python {self.command} --help)\n")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is (as Ctrl-C raises KeyboardInterrupt)."""


def _raise_terminated(signum, frame):
    raise Terminated


def _say(prog, message):
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{prog}: {message}", file=sys.stderr)


def is_out_of_memory(error):
    """torch reports a failed allocation as a RuntimeError whose message mentions memory."""
    return isinstance(error, MemoryError) or (isinstance(error, RuntimeError) and "memory" in str(error).lower())


def guarded(prog, main, *args, os_hint="free space or fix the path", memory_hint="use smaller sizes",
            interrupt_hint=""):
    """Run main(*args) and return its exit status (None counts as 0), with every way it can fail as
    one line on stderr: UsageError -> 2; OSError -> 2 ("PROG: error: STRERROR (FILE); OS_HINT");
    out of memory -> 2 (MEMORY_HINT); Ctrl-C -> 130, SIGTERM -> 143 ("PROG: interrupted"); a broken
    pipe on stdout -> 1, silently. Any other exception is a bug and keeps its traceback. A hint may
    be a function of no arguments, asked when the error happens (what to advise depends on how far
    the work got)."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if _main_thread() else None
    if _main_thread() and signal.getsignal(signal.SIGINT) is _exit_interrupted:  # loaded: Ctrl-C is ours now
        signal.signal(signal.SIGINT, signal.default_int_handler)
    hint = lambda h: h() if callable(h) else h  # noqa: E731
    try:
        return main(*args) or 0
    except UsageError as error:
        _say(prog, f"error: {error}")
        return 2
    except BrokenPipeError:  # `| head`: the reader has what it wanted; keep Python from complaining at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as error:  # a full disk, a directory that vanished, no permission: what is written is whole
        where = f" ({error.filename})" if error.filename else ""
        _say(prog, f"error: {error.strerror or error}{where}; {hint(os_hint)}")
        return 2
    except (MemoryError, RuntimeError) as error:
        if not is_out_of_memory(error):
            raise
        _say(prog, f"error: out of memory ({(str(error).strip().splitlines() or [''])[0][:300]}); {hint(memory_hint)}")
        return 2
    except KeyboardInterrupt as interrupt:  # what is finished is kept; nothing half-written is left behind
        _say(prog, "interrupted" + (f"; {hint(interrupt_hint)}" if hint(interrupt_hint) else ""))
        return 128 + (signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


_loading = {"prog": "python"}


def _exit_interrupted(signum, frame):
    """Ctrl-C before main(): nothing is written yet, so there is nothing to clean up."""
    if int(os.environ.get("RANK", "0")) == 0:
        os.write(2, f"{_loading['prog']}: interrupted\n".encode())
    os._exit(128 + signal.SIGINT)


def quiet_ctrl_c_while_loading(prog):
    """Until guarded() runs, Ctrl-C ends the program with one line and status 130. A tool calls this
    before its heavy imports, only when run as a script (a module imported by another keeps Python's
    KeyboardInterrupt)."""
    _loading["prog"] = prog
    if _main_thread():
        signal.signal(signal.SIGINT, _exit_interrupted)


def _main_thread():
    import threading
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def stop_signals():
    """Within the block, Ctrl-C (SIGINT) and SIGTERM do not interrupt: they are appended to the yielded
    list, which the loop checks after each step (so it can save and stop cleanly). A second signal
    raises KeyboardInterrupt at once. The previous handlers come back on exit."""
    received = []

    def on_signal(signum, frame):
        if received:
            raise KeyboardInterrupt
        received.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
