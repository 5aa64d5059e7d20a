"""The checks every bad-input case of the analysis tools makes (tests/robustness/test_*_guards.py): one
line naming the problem and the fix, a non-zero exit, no traceback, every file already there unchanged."""
import hashlib
import json
import os
import shutil


def private_copy(tool_run, tmp_path, run_from=None):
    """A copy of the run (or of run_from, a variant of it) and of its dataset, the run pointed at the copied
    data: (run_dir, data_dir). The data's tokens, so its fingerprint, are the same."""
    run_dir, data_dir = str(tmp_path / "run"), str(tmp_path / "data")
    shutil.copytree(run_from or tool_run[0], run_dir)
    shutil.copytree(tool_run[1], data_dir)
    point_at(run_dir, data_dir)
    return run_dir, data_dir


def point_at(run_dir, dataset):
    """Make the run's config.json name another dataset (as if it had trained there)."""
    path = os.path.join(run_dir, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["train"]["dataset"] = dataset
    with open(path, "w") as f:
        json.dump(config, f)


def hashes(*folders):
    """{path: sha256} of every file under the folders (a file added or removed changes it too)."""
    found = {}
    for folder in folders:
        for parent, _, names in os.walk(folder):
            for name in names:
                path = os.path.join(parent, name)
                if os.path.isfile(path):
                    with open(path, "rb") as f:
                        found[path] = hashlib.sha256(f.read()).hexdigest()
    return found


def run_main(main, argv, capsys):
    """(exit status, stderr, stdout) of an in-process main(argv), whether it returns or exits."""
    capsys.readouterr()
    try:
        status = main([str(a) for a in argv])
    except SystemExit as stop:
        status = stop.code
    captured = capsys.readouterr()
    err = captured.err
    if isinstance(status, str):            # sys.exit("message") prints the message, status 1
        err, status = err + status + "\n", 1
    return status, err, captured.out


def assert_one_line_error(status, err, tool, pieces):
    """A non-zero exit, no traceback, and stderr one line "TOOL: error: ..." holding every piece."""
    assert status not in (0, None), err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{tool}: error: "), err
    for piece in pieces:
        assert piece in lines[0], (piece, lines[0])


def assert_refused(capsys, main, argv, tool, pieces, folders, locked=None):
    """main(argv) gives one line "TOOL: error: ..." naming every piece, and no file under the folders
    changes; with locked (a run directory), while another writer holds its lock (support/rundir.py)."""
    from support import rundir
    lock = rundir.lock_run_dir(locked, create=False) if locked else None
    before = hashes(*folders)
    try:
        status, err, _ = run_main(main, argv, capsys)
    finally:
        if lock:
            lock.close()
    assert_one_line_error(status, err, tool, pieces)
    assert hashes(*folders) == before, f"{tool} {argv}: a file changed"
