"""data/prepare.py on bad input and in bad weather: one line naming the problem and the fix, a
non-zero exit, no traceback, no file touched and no temporary file left -- for bad flags, bad
files, a full disk, Ctrl-C, a closed pipe; an existing dataset is never replaced silently; no
token id wraps; and the fingerprint train.py stores with a run tells datasets apart."""
import errno
import hashlib
import io
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from data import prepare

TEXT = "def greet(name):\n    return f'hello, {name} — ünïcödé'\n" * 60
PREPARE = os.path.join(ROOT, "data", "prepare.py")


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    """A data/ folder of our own, holding one dataset ('stdlib', built from TEXT) and an input file;
    the current directory is tmp_path."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setattr(prepare, "DATA_ROOT", str(root))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "long.txt").write_text(TEXT * 10, encoding="utf-8")  # long enough for a BPE dataset
    prepare.build_from_file(str(tmp_path / "notes.txt"), str(root / "stdlib"))
    return root


def prepare_main(*argv):
    """prepare.main in-process, as the process would end: (exit status, its stderr line or None).
    Any exception but SystemExit escapes, and fails the test with its traceback."""
    try:
        prepare.main([str(a) for a in argv])
    except KeyboardInterrupt:  # would stop pytest itself
        pytest.fail("KeyboardInterrupt escaped prepare.main: the user sees a traceback")
    except SystemExit as e:
        if isinstance(e.code, str):  # sys.exit("message"): the message goes to stderr, the status is 1
            return 1, e.code
        return e.code or 0, None
    return 0, None


def tree_hashes(folder):
    """{path: sha256} of every file under folder, and {path: "folder"} of every folder: a temporary file or
    an empty folder left behind shows as a new path."""
    hashes = {}
    for root, folders, files in os.walk(folder):
        hashes.update((os.path.join(root, name), "folder") for name in folders)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.isfile(path):  # a named pipe: reading it would wait for a writer
                hashes[path] = "not a file"
                continue
            with open(path, "rb") as f:
                hashes[path] = hashlib.sha256(f.read()).hexdigest()
    return hashes


def input_file(tmp, content, name="input.txt"):
    path = tmp / name
    path.write_bytes(content)
    return path


def failing_writes(m, name, error):
    """Writing a file whose name starts with `name` raises `error` after part of the first write: a full
    disk (OSError), a Ctrl-C (KeyboardInterrupt). Every file prepare.py writes goes through its open."""
    real_open = open

    class Failing:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(bytes(data)[:10])
            raise error

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def fake_open(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        return Failing(f) if "w" in mode and os.path.basename(str(path)).startswith(name) else f
    m.setattr(prepare, "open", fake_open, raising=False)
    m.setattr(prepare.bpe, "open", fake_open, raising=False)


def existing_name(t, r, m):
    """A user's file that happens to be called stdlib.txt: its default --name is the default dataset's."""
    return ["--input", input_file(t, TEXT.upper().encode(), "stdlib.txt")]


def nanogpt_style_folder(t, r, m):
    (r / "shakespeare").mkdir()
    (r / "shakespeare" / "train.bin").write_bytes(b"\x01\x02")
    return ["--input", t / "notes.txt", "--name", "shakespeare"]


def name_is_a_file(t, r, m):
    (r / "taken").write_text("x")
    return ["--input", t / "notes.txt", "--name", "taken"]


def a_fifo(t, r, m):
    os.mkfifo(t / "fifo")
    return ["--input", t / "fifo", "--name", "x"]


def unreadable_stdlib_file(t, r, m):
    m.setattr(prepare, "stdlib_source_files", lambda: (str(t), [str(t / "notes.txt"), str(t)]))  # t: a directory
    return ["--name", "other"]


def disk_full(name, *argv):
    def setup(t, r, m):
        failing_writes(m, name, OSError(errno.ENOSPC, "No space left on device"))
        return ["--input", t / ("long.txt" if "--vocab_size=290" in argv else "notes.txt"), *argv]
    return setup


def interrupted(name, *argv):
    def setup(t, r, m):
        failing_writes(m, name, KeyboardInterrupt())
        return ["--input", t / ("long.txt" if "--vocab_size=290" in argv else "notes.txt"), *argv]
    return setup


def raises_in_build(error):
    def setup(t, r, m):
        def fail(*args, **kwargs):
            raise error
        m.setattr(prepare, "build_from_file", fail)
        return ["--input", t / "notes.txt", "--name", "x"]
    return setup


PROGRESS = ("learning BPE merges", "encoding ")  # the lines a BPE build writes to stderr before an error
FULL = ["cannot write", "No space left on device", "free some space", "--out"]
# name -> (setup(tmp_path, data_root, monkeypatch) -> argv, pieces of the one line; the current directory is tmp_path)
BAD_INPUTS = {
    "input missing": (lambda t, r, m: ["--input", t / "nope.txt", "--name", "x"], ["does not exist"]),
    "input missing, relative path": (lambda t, r, m: ["--input", "nope.txt", "--name", "x"],
                                     ["does not exist"]),  # and the path is stated in full: see below
    "input a directory": (lambda t, r, m: ["--input", t, "--name", "x"], ["is a directory", "one UTF-8 text file"]),
    "input a device": (lambda t, r, m: ["--input", "/dev/null", "--name", "x"], ["not a regular file"]),
    "input a named pipe": (a_fifo, ["not a regular file", "give one UTF-8 text file"]),
    "input empty": (lambda t, r, m: ["--input", input_file(t, b""), "--name", "x"], ["is empty"]),
    "input blank": (lambda t, r, m: ["--input", input_file(t, b" \n\t\n"), "--name", "x"], ["is empty"]),
    "input binary": (lambda t, r, m: ["--input", input_file(t, b"\x7fELF\x00\x01" * 300), "--name", "x"],
                     ["looks binary", "give a UTF-8 text file"]),
    "input not UTF-8": (lambda t, r, m: ["--input", input_file(t, b"\xff\xfe abc " * 300), "--name", "x"],
                        ["not UTF-8", "offset 0", "convert it"]),
    "input UTF-8 with a lone surrogate": (lambda t, r, m: ["--input", input_file(t, b"ab \xed\xa0\x80 " * 300),
                                                           "--name", "x"], ["not UTF-8", "offset 3"]),
    "input too short": (lambda t, r, m: ["--input", input_file(t, b"too short"), "--name", "x"],
                        ["need at least 1000", "longer file"]),
    "input too short for BPE": (lambda t, r, m: ["--input", input_file(t, b"ab ab " * 200), "--name", "x",
                                                 "--vocab_size=290"], ["too little text", "smaller vocab_size"]),
    "a file named like the default dataset": (existing_name, ["already holds a dataset", "--overwrite", "--name"]),
    "the default dataset exists": (lambda t, r, m: [], ["stdlib already holds a dataset", "pass --overwrite"]),
    "a folder with another tool's train.bin": (nanogpt_style_folder, ["already holds a dataset (train.bin)"]),
    "name is a file": (name_is_a_file, ["is a file, not a dataset directory", "pick another --name"]),
    "name escapes data/": (lambda t, r, m: ["--input", t / "notes.txt", "--name", "../escape"],
                           ["--name must be a plain directory name", "--out DIR"]),
    "name empty": (lambda t, r, m: ["--input", t / "notes.txt", "--name", ""], ["--name must be a plain directory name"]),
    "name with a slash": (lambda t, r, m: ["--input", t / "notes.txt", "--name", "a/b"], ["--name must be a plain"]),
    "name and out": (lambda t, r, m: ["--input", t / "notes.txt", "--name", "a", "--out", "b"], ["not both"]),
    "out empty": (lambda t, r, m: ["--input", t / "notes.txt", "--out", ""], ["--out must be a directory path"]),
    "out in a folder that does not exist": (lambda t, r, m: ["--input", t / "notes.txt", "--out", "no/such/dir"],
                                            [f"the folder {os.sep}", f"{os.sep}no{os.sep}such does not exist", "create it first"]),
    "out is a file": (lambda t, r, m: ["--input", t / "notes.txt", "--out", "notes.txt"],
                      ["notes.txt is a file, not a dataset directory"]),
    "out holds a dataset": (lambda t, r, m: ["--input", t / "notes.txt", "--out", "data/stdlib"],
                            [f"{os.sep}data{os.sep}stdlib already holds a dataset", "--overwrite"]),
    "max_bytes zero": (lambda t, r, m: ["--max_bytes=0", "--name", "x"], ["--max_bytes must be at least 1000"]),
    "max_bytes not a number": (lambda t, r, m: ["--max_bytes=lots"], ["--max_bytes", "invalid int value", "see --help"]),
    "max_bytes with --input": (lambda t, r, m: ["--input", t / "notes.txt", "--max_bytes=5000", "--name", "x"],
                               ["--max_bytes caps the default corpus", "does not apply to --input"]),
    "max_bytes the existing stdlib was not built with": (lambda t, r, m: ["--vocab_size=290", "--max_bytes=5000"],
                                                         ["was built with --max_bytes=unknown, not 5000",
                                                          "drop --max_bytes"]),
    "vocab_size too small": (lambda t, r, m: ["--input", t / "notes.txt", "--vocab_size=100"],
                             ["--vocab_size must be 256 (bytes) or between 257"]),
    "vocab_size too large": (lambda t, r, m: ["--input", t / "notes.txt", "--vocab_size=70000"],
                             ["--vocab_size must be 256 (bytes) or between 257"]),
    "vocab_size not a number": (lambda t, r, m: ["--vocab_size=2k"], ["--vocab_size", "invalid int value"]),
    "vocab_size with char level": (lambda t, r, m: ["--input", t / "notes.txt", "--vocab_size=290", "--level=char"],
                                   ["does not combine"]),
    "char level without input": (lambda t, r, m: ["--level=char", "--name", "x"], ["--level=char needs --input"]),
    "unknown level": (lambda t, r, m: ["--input", t / "notes.txt", "--level=word"], ["--level", "invalid choice"]),
    "unknown flag": (lambda t, r, m: ["--inptu", t / "notes.txt"], ["unrecognized arguments", "see --help"]),
    "a standard-library file cannot be read": (unreadable_stdlib_file, ["cannot read", "--input FILE"]),
    "full disk: train.bin": (disk_full("train.bin", "--name", "x"), FULL + [f"x{os.sep}train.bin"]),
    "full disk: val.bin": (disk_full("val.bin", "--name", "x"), FULL + [f"x{os.sep}val.bin"]),
    "full disk: meta.json": (disk_full("meta.json", "--name", "x"), FULL + [f"x{os.sep}meta.json"]),
    "full disk: merges.txt": (disk_full("merges.txt", "--name", "x", "--vocab_size=290"), FULL + ["merges.txt"]),
    "full disk, replacing a dataset": (disk_full("val.bin", "--name", "stdlib", "--overwrite"), FULL + ["val.bin"]),
    "full disk, replacing it by BPE": (disk_full("meta.json", "--name", "stdlib", "--overwrite", "--vocab_size=290"),
                                       FULL + ["meta.json"]),
    "full disk under --out": (disk_full("train.bin", "--out", "mine"), FULL + [f"mine{os.sep}train.bin"]),
    "Ctrl-C while writing": (interrupted("val.bin", "--name", "x"), ["interrupted (Ctrl-C)", "not written or changed"]),
    "Ctrl-C while replacing": (interrupted("meta.json", "--name", "stdlib", "--overwrite"), ["interrupted (Ctrl-C)"]),
    "Ctrl-C while writing merges.txt": (interrupted("merges.txt", "--name", "x", "--vocab_size=290"), ["interrupted"]),
    "out of memory": (raises_in_build(MemoryError()), ["out of memory", "smaller --max_bytes"]),
    "Ctrl-C while reading": (raises_in_build(KeyboardInterrupt()), ["interrupted (Ctrl-C)"]),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_line_and_changes_nothing(case, data_root, tmp_path, monkeypatch, capsys):
    setup, expected = BAD_INPUTS[case]
    argv = setup(tmp_path, data_root, monkeypatch)
    before = tree_hashes(tmp_path)
    status, message = prepare_main(*argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines() or [""]
    message = message if message is not None else lines.pop()  # printed by main itself: its last stderr line
    assert all(line.startswith(PROGRESS) for line in lines if line), captured.err  # anything else: progress
    assert status not in (0, None), f"{case}: expected an error, got exit status {status!r}"
    assert message.startswith("prepare.py: ") and "\n" not in message, message
    for piece in expected:
        assert piece in message, f"{case}: {piece!r} not in {message!r}"
    assert "Traceback" not in captured.err and "usage:" not in captured.err  # argparse's usage line: not printed
    assert tree_hashes(tmp_path) == before, f"{case}: a file or folder changed, appeared (a temporary one?) or went"


def test_paths_in_messages_are_absolute(data_root, tmp_path):
    """A relative --input or --out is taken from the current directory, and every line says where that is."""
    status, message = prepare_main("--input", "nope.txt", "--name", "x")
    assert status == 1 and repr(str(tmp_path / "nope.txt")) in message
    status, message = prepare_main("--input", "notes.txt", "--out", "data/stdlib")
    assert status == 1 and message.startswith(f"prepare.py: error: {data_root / 'stdlib'} already holds")


def test_relative_out_and_input_are_resolved_and_stated(data_root, tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    assert prepare_main("--input", "notes.txt", "--out", "runs/mine") == (0, None)
    out = capsys.readouterr().out
    n_train = int(0.9 * len(TEXT.encode()))
    assert out == (f"wrote {tmp_path / 'runs' / 'mine'}: {n_train:,} train and {len(TEXT.encode()) - n_train:,} val "
                   f"tokens, vocab 256 (byte-level) from {tmp_path / 'notes.txt'}\n")
    train, val, meta = prepare.load_dataset(str(tmp_path / "runs" / "mine"))
    assert bytes(train) + bytes(val) == TEXT.encode() and meta["source"] == str(tmp_path / "notes.txt")
    assert sorted(os.listdir(data_root)) == ["stdlib"]  # --out: nothing under data/


def test_a_file_name_the_terminal_cannot_show_is_escaped(data_root, tmp_path, monkeypatch):
    """The dataset is written, and the line that says so must not fail on an ASCII-only stdout."""
    path = input_file(tmp_path, TEXT.encode(), "ünï.txt")
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr(sys, "stdout", stdout)
    assert prepare_main("--input", path) == (0, None)
    stdout.seek(0)
    assert "\\xfcn\\xef" in stdout.read() and os.path.isfile(data_root / "ünï" / "meta.json")


def test_an_existing_dataset_is_replaced_only_with_overwrite(data_root, tmp_path):
    user_file = input_file(tmp_path, TEXT.upper().encode(), "stdlib.txt")
    before = tree_hashes(data_root)
    assert "already holds a dataset" in prepare_main("--input", user_file)[1]
    assert tree_hashes(data_root) == before
    assert prepare_main("--input", user_file, "--overwrite") == (0, None)
    train, val, meta = prepare.load_dataset(str(data_root / "stdlib"))
    assert bytes(train) + bytes(val) == TEXT.upper().encode() and meta["source"] == str(user_file)


def test_a_bpe_dataset_rebuilt_as_bytes_keeps_no_merges(data_root, tmp_path):
    """Else Tokenizer.load would still find the old merges.txt beside the new byte tokens."""
    assert prepare_main("--input", "long.txt", "--name", "d", "--vocab_size=290") == (0, None)
    assert os.path.isfile(data_root / "d" / "merges.txt")
    assert prepare_main("--input", "notes.txt", "--name", "d", "--overwrite") == (0, None)
    assert sorted(os.listdir(data_root / "d")) == ["meta.json", "train.bin", "val.bin"]


def test_a_char_vocabulary_above_65536_does_not_wrap(tmp_path):
    chars = [chr(c) for c in range(0x4E00, 0x4E00 + 70_000) if not 0xD800 <= c < 0xE000]  # CJK and beyond
    text = "".join(chars) + "".join(chars[:5000])
    path = tmp_path / "wide.txt"
    path.write_text(text, encoding="utf-8")
    meta = prepare.build_from_file(str(path), str(tmp_path / "wide"), level="char")
    train, val, loaded = prepare.load_dataset(str(tmp_path / "wide"))
    assert meta["vocab_size"] == len(set(text)) > 65_536 and loaded["dtype"] == "uint32"
    assert "".join(loaded["chars"][i] for i in np.concatenate([train, val])) == text


def test_fingerprint_tells_datasets_apart(tmp_path):
    path = input_file(tmp_path, TEXT.encode())
    prepare.build_from_file(str(path), str(tmp_path / "a"))
    prepare.build_from_file(str(path), str(tmp_path / "b"))  # the same text again: the same tokens
    assert prepare.fingerprint(str(tmp_path / "a")) == prepare.fingerprint(str(tmp_path / "b"))
    input_file(tmp_path, TEXT.replace("greet", "greer", 1).encode())
    prepare.build_from_file(str(path), str(tmp_path / "b"))  # one byte differs
    assert prepare.fingerprint(str(tmp_path / "a")) != prepare.fingerprint(str(tmp_path / "b"))
    # a large file is hashed by evenly spaced blocks (here 16-byte blocks, 4 of them): the first block counts
    assert prepare.fingerprint(str(tmp_path / "a"), block=16, blocks=4) != \
        prepare.fingerprint(str(tmp_path / "b"), block=16, blocks=4)


def test_input_path_with_home(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert prepare_main("--input", "~/notes.txt", "--name", "mine") == (0, None)
    assert os.path.isfile(data_root / "mine" / "meta.json")


# ---------------------------------------------------------------------------------------------
# what only a real process shows: Ctrl-C, a closed pipe, a write the kernel refuses

def process(tmp, *argv, **kwargs):
    """data/prepare.py as a user runs it, but a copy of it in tmp/repo/data/, so its datasets go there."""
    data = tmp / "repo" / "data"
    data.mkdir(parents=True, exist_ok=True)
    for name in ("prepare.py", "bpe.py"):
        shutil.copy(os.path.join(ROOT, "data", name), data / name)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.Popen([sys.executable, str(data / "prepare.py"), *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, **kwargs)


def big_text(path, n_bytes=2_000_000):
    """Python source (the standard library's), n_bytes of it: a BPE build of 8000 tokens takes a while."""
    _, paths = prepare.stdlib_source_files()
    parts, total = [], 0
    for source in paths:
        with open(source, "rb") as f:
            raw = f.read()
        try:
            parts.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            continue
        total += len(raw)
        if total >= n_bytes:
            break
    path.write_text("".join(parts), encoding="utf-8")
    return path


def test_ctrl_c_in_a_real_process(tmp_path):
    """SIGINT while the BPE merges are learned, replacing a dataset: exit 130, one line, nothing changed."""
    ds = tmp_path / "repo" / "data" / "ds"
    prepare.build_from_file(str(input_file(tmp_path, TEXT.encode())), str(ds))
    p = process(tmp_path, "--input", big_text(tmp_path / "big.txt"), "--name", "ds", "--overwrite", "--vocab_size=8000")
    before = tree_hashes(tmp_path / "repo")  # it writes nothing before it has learned the merges
    seen = b""
    while b"learning BPE merges" not in seen:  # tqdm's first line: the merges are being learned
        chunk = p.stderr.read1(4096)
        assert chunk, f"the process ended before learning merges: {seen!r}"
        seen += chunk
    time.sleep(0.3)  # into the pre-split of 2 MB (a second or so), past tqdm's start
    p.send_signal(signal.SIGINT)
    err = (seen + p.stderr.read()).decode()
    assert p.wait(timeout=60) == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.strip().splitlines()[-1] == f"prepare.py: interrupted (Ctrl-C); {ds} was not written or changed"
    assert tree_hashes(tmp_path / "repo") == before


def test_a_closed_stdout_ends_quietly(tmp_path):
    """`prepare.py | head -0`: the dataset is complete; no traceback, no "Exception ignored" either."""
    p = process(tmp_path, "--input", input_file(tmp_path, TEXT.encode()), "--name", "ds")
    p.stdout.close()  # before the process writes its line
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 141 and err == "", err
    train, val, _ = prepare.load_dataset(str(tmp_path / "repo" / "data" / "ds"))
    assert bytes(train) + bytes(val) == TEXT.encode()


def test_a_write_the_kernel_refuses(tmp_path):
    """A real failed write (a 2 kB file size limit): one line naming the file, nothing left behind."""
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))
    ds = tmp_path / "repo" / "data" / "ds"
    prepare.build_from_file(str(input_file(tmp_path, TEXT.encode())), str(ds))
    p = process(tmp_path, "--input", tmp_path / "input.txt", "--name", "ds", "--overwrite", preexec_fn=limit)
    before = tree_hashes(tmp_path)
    out, err = (stream.decode() for stream in p.communicate(timeout=60))
    assert p.returncode == 1 and out == "", err
    assert err == (f"prepare.py: error: cannot write {ds / 'train.bin'} (File too large); "
                   f"free some space on that disk, or build the dataset elsewhere with --out DIR\n")
    assert tree_hashes(tmp_path) == before
