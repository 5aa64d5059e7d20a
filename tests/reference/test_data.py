"""data/prepare.py: the default (standard library) dataset, custom files, and bad input."""
import contextlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from data import prepare

SAMPLE_TEXT = "def greet(name):\n    return f'hello, {name} — ünïcödé'\n" * 60


def run_prepare(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "data", "prepare.py"), *args],
                          capture_output=True, text=True, timeout=120)


@contextlib.contextmanager
def dataset_built_by_cli(tmp_path, text, *args):
    """Runs data/prepare.py --input FILE --out DIR *args as a user would, FILE holding text, DIR under
    tmp_path; yields DIR."""
    path = tmp_path / "notes.txt"
    path.write_text(text, encoding="utf-8")
    out = tmp_path / "dataset"
    result = run_prepare("--input", str(path), "--out", str(out), *args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {out}: "), result  # the absolute path it wrote
    yield str(out)


def test_default_dataset_is_the_standard_library_source_split_by_file(tmp_path):
    meta = prepare.build_stdlib(str(tmp_path), max_bytes=300_000)
    train, val, loaded_meta = prepare.load_dataset(str(tmp_path))
    assert meta == loaded_meta and meta["vocab_size"] == 256 and meta["level"] == "byte"
    assert len(train) == meta["train_tokens"] and len(val) == meta["val_tokens"]
    # the tokens are the bytes of real Python files in sorted order; every 10th file is validation
    _, paths = prepare.stdlib_source_files()
    with open(paths[0], "rb") as f:
        first_file = f.read()
    with open(paths[9], "rb") as f:
        tenth_file = f.read()
    assert bytes(train[:len(first_file)]) == first_file
    assert bytes(val[:len(tenth_file)]) == tenth_file


def test_custom_file_byte_level(tmp_path):
    path = tmp_path / "my.txt"
    path.write_text(SAMPLE_TEXT, encoding="utf-8")
    meta = prepare.build_from_file(str(path), str(tmp_path / "ds"), level="byte")
    train, val, _ = prepare.load_dataset(str(tmp_path / "ds"))
    raw = SAMPLE_TEXT.encode("utf-8")
    assert bytes(train) + bytes(val) == raw
    assert meta["train_tokens"] == int(0.9 * len(raw))


def test_custom_file_char_level_round_trips(tmp_path):
    path = tmp_path / "my.txt"
    path.write_text(SAMPLE_TEXT, encoding="utf-8")
    meta = prepare.build_from_file(str(path), str(tmp_path / "ds"), level="char")
    train, val, _ = prepare.load_dataset(str(tmp_path / "ds"))
    assert meta["vocab_size"] == len(set(SAMPLE_TEXT))
    decoded = "".join(meta["chars"][i] for i in np.concatenate([train, val]))
    assert decoded == SAMPLE_TEXT


def test_cli_builds_a_named_dataset(tmp_path):
    with dataset_built_by_cli(tmp_path, SAMPLE_TEXT, "--level=char") as data_dir:
        with open(os.path.join(data_dir, "meta.json")) as f:
            assert json.load(f)["level"] == "char"


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    (b"", "is empty"),
    (b"\x7fELF\x00\x01\x02" * 300, "binary"),
    (b"\xff\xfe not utf8 " * 300, "not UTF-8"),
    (b"too short", "need at least"),
])
def test_bad_input_is_a_one_line_error(tmp_path, content, message):
    path = tmp_path / "input.txt"
    if content is not None:
        path.write_bytes(content)
    result = run_prepare("--input", str(path), "--out", str(tmp_path / "never_written"))
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / "never_written")
