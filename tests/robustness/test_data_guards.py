"""data/prepare.py on bad input: one line naming the problem and the fix, a non-zero exit, no
traceback, no dataset touched; an existing dataset is never replaced silently; no token id wraps;
and the fingerprint train.py stores with a run tells datasets apart."""
import hashlib
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from data import prepare

TEXT = "def greet(name):\n    return f'hello, {name} — ünïcödé'\n" * 60


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    """A data/ folder of our own, holding one dataset ('stdlib', built from TEXT) and an input file."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setattr(prepare, "DATA_ROOT", str(root))
    (tmp_path / "notes.txt").write_text(TEXT, encoding="utf-8")
    prepare.build_from_file(str(tmp_path / "notes.txt"), str(root / "stdlib"))
    return root


def prepare_main(*argv):
    """prepare.main in-process; returns the SystemExit code (None when it ended normally)."""
    try:
        prepare.main([str(a) for a in argv])
    except SystemExit as e:
        return e.code
    return None


def tree_hashes(folder):
    hashes = {}
    for root, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                hashes[os.path.join(root, name)] = hashlib.sha256(f.read()).hexdigest()
    return hashes


def input_file(tmp, content, name="input.txt"):
    path = tmp / name
    path.write_bytes(content)
    return path


def existing_name(tmp, root):
    """A user's file that happens to be called stdlib.txt: its default --name is the default dataset's."""
    return ["--input", input_file(tmp, TEXT.upper().encode(), "stdlib.txt")]


def nanogpt_style_folder(tmp, root):
    (root / "shakespeare").mkdir()
    (root / "shakespeare" / "train.bin").write_bytes(b"\x01\x02")
    return ["--input", tmp / "notes.txt", "--name", "shakespeare"]


def name_is_a_file(tmp, root):
    (root / "taken").write_text("x")
    return ["--input", tmp / "notes.txt", "--name", "taken"]


BAD_INPUTS = {
    "input missing": (lambda t, r: ["--input", t / "nope.txt", "--name", "x"], ["does not exist"]),
    "input a directory": (lambda t, r: ["--input", t, "--name", "x"], ["is a directory", "one UTF-8 text file"]),
    "input empty": (lambda t, r: ["--input", input_file(t, b""), "--name", "x"], ["is empty"]),
    "input binary": (lambda t, r: ["--input", input_file(t, b"\x7fELF\x00\x01" * 300), "--name", "x"],
                     ["looks binary", "give a UTF-8 text file"]),
    "input not UTF-8": (lambda t, r: ["--input", input_file(t, b"\xff\xfe abc " * 300), "--name", "x"], ["not UTF-8"]),
    "input too short": (lambda t, r: ["--input", input_file(t, b"too short"), "--name", "x"], ["need at least 1000"]),
    "a file named like the default dataset": (existing_name, ["already holds a dataset", "--overwrite", "--name"]),
    "the default dataset exists": (lambda t, r: [], ["stdlib already holds a dataset", "pass --overwrite"]),
    "a folder with another tool's train.bin": (nanogpt_style_folder, ["already holds a dataset (train.bin)"]),
    "name is a file": (name_is_a_file, ["is a file, not a dataset directory", "pick another --name"]),
    "name escapes data/": (lambda t, r: ["--input", t / "notes.txt", "--name", "../escape"],
                           ["--name must be a plain directory name"]),
    "name empty": (lambda t, r: ["--input", t / "notes.txt", "--name", ""], ["--name must be a plain directory name"]),
    "name with a slash": (lambda t, r: ["--input", t / "notes.txt", "--name", "a/b"], ["--name must be a plain"]),
    "max_bytes zero": (lambda t, r: ["--max_bytes=0", "--name", "x"], ["--max_bytes must be at least 1000"]),
    "max_bytes not a number": (lambda t, r: ["--max_bytes=lots"], ["--max_bytes", "invalid int value", "see --help"]),
    "char level without input": (lambda t, r: ["--level=char", "--name", "x"], ["--level=char needs --input"]),
    "unknown level": (lambda t, r: ["--input", t / "notes.txt", "--level=word"], ["--level", "invalid choice"]),
    "unknown flag": (lambda t, r: ["--inptu", t / "notes.txt"], ["unrecognized arguments", "see --help"]),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_line_and_changes_nothing(case, data_root, tmp_path, capsys):
    setup, expected = BAD_INPUTS[case]
    argv = setup(tmp_path, data_root)
    before = tree_hashes(data_root)
    message = prepare_main(*argv)
    assert isinstance(message, str), f"{case}: expected an error, got exit code {message!r}"
    assert message.startswith("prepare.py: error: ") and "\n" not in message, message
    for piece in expected:
        assert piece in message, f"{case}: {piece!r} not in {message!r}"
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "usage:" not in captured.err  # argparse's usage line: not printed
    assert tree_hashes(data_root) == before, f"{case}: a dataset changed"
    assert not os.path.exists(tmp_path / "escape")


def test_an_existing_dataset_is_replaced_only_with_overwrite(data_root, tmp_path):
    user_file = input_file(tmp_path, TEXT.upper().encode(), "stdlib.txt")
    before = tree_hashes(data_root)
    assert "already holds a dataset" in prepare_main("--input", user_file)
    assert tree_hashes(data_root) == before
    assert prepare_main("--input", user_file, "--overwrite") is None
    train, val, meta = prepare.load_dataset(str(data_root / "stdlib"))
    assert bytes(train) + bytes(val) == TEXT.upper().encode() and meta["source"] == str(user_file)


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
    assert prepare_main("--input", "~/notes.txt", "--name", "mine") is None
    assert os.path.isfile(data_root / "mine" / "meta.json")
