"""data/bpe.py against a slow, obviously-right BPE, and the BPE datasets of data/prepare.py."""
import json.decoder
import os
import random
import sys
from collections import Counter

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from data import bpe
from data import prepare
from test_data import dataset_built_by_cli, run_prepare  # noqa: E402

# real Python source (a standard-library file), prose with accents, CJK and emoji, whitespace runs
with open(json.decoder.__file__, encoding="utf-8") as f:
    CORPUS = f.read() + ("def greet(name):\n    return f'hello, {name}'\n\n\nclass Point:\n\tx = 1_000\n"
                         "    # ünïcödé — naïve café, 日本語のテキスト 🐍🐍\r\n" + "x  =  y   +   z\n" * 3) * 5


def naive_train(text, vocab_size):
    """BPE the slow way: recount every pair in every piece occurrence before each merge."""
    pieces = [list(bpe.to_bytes(p)) for p in bpe.SPLIT_RE.findall(text)]
    merges = []
    for new_id in range(256, vocab_size):
        counts = Counter(pair for ids in pieces for pair in zip(ids, ids[1:]))
        best = max(counts.values())
        pair = min(p for p, n in counts.items() if n == best)  # ties: the smallest pair
        merges.append(pair)
        pieces = [bpe.merge(ids, pair, new_id) for ids in pieces]
    return merges


def naive_encode(merges, text):
    """Apply every merge, in the order learned, to every piece."""
    ids = []
    for piece in bpe.SPLIT_RE.findall(text):
        piece_ids = list(bpe.to_bytes(piece))
        for k, pair in enumerate(merges):
            piece_ids = bpe.merge(piece_ids, pair, 256 + k)
        ids += piece_ids
    return ids


@pytest.fixture(scope="module")
def tokenizer():
    return bpe.Tokenizer.train(CORPUS, 400)


def test_merges_match_the_naive_trainer(tokenizer):
    assert tokenizer.merges == naive_train(CORPUS, 400)
    assert tokenizer.vocab_size == 400 and len(tokenizer.vocab) == 400


def test_training_is_deterministic(tokenizer):
    assert bpe.Tokenizer.train(CORPUS, 400).merges == tokenizer.merges


def test_encode_matches_applying_the_merges_in_order(tokenizer):
    text = CORPUS[:500] + "an unseen sentence: Grüße, 世界!  \t\n"
    ids = tokenizer.encode(text)
    assert ids == naive_encode(tokenizer.merges, text)
    assert len(ids) < 0.7 * len(text.encode("utf-8"))  # the merges compress the text they were learned on


@pytest.mark.parametrize("text", [
    "", " ", "\n", "a", "    return x\n", "\t\t  \n\n   \r\n  ", "x" * 300, " " * 100 + "y",
    "naïve café — 日本語 🐍👍🏽", "'s 're 'll don't", "1234567890 3.14159 ½ ²", "\x00\x01\x7f",
])
def test_decode_encode_round_trip(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_round_trip_random_unicode(tokenizer):
    rng = random.Random(0)
    alphabet = [chr(c) for c in list(range(32, 127)) + [9, 10, 13, 0xA0, 0xE9, 0x3000, 0x4E2D, 0x1F40D, 0x2028]]
    for _ in range(50):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 80)))
        assert "".join(bpe.SPLIT_RE.findall(text)) == text  # the pre-split loses nothing
        assert tokenizer.decode(tokenizer.encode(text)) == text


def test_bytes_that_are_not_utf8_survive_as_surrogate_escapes(tokenizer):
    raw = "café = 1\n".encode("latin-1") + b"\xff\xfe" + "ünï\n".encode()
    ids = tokenizer.encode(raw.decode("utf-8", "surrogateescape"))
    assert tokenizer.decode_bytes(ids) == raw


def test_save_and_load_give_the_same_tokenizer(tokenizer, tmp_path):
    path = tokenizer.save(str(tmp_path))
    lines = open(path).read().splitlines()
    assert lines[0] == bpe.FORMAT_LINE and len(lines) == 1 + 144
    assert lines[1] == " ".join(map(str, tokenizer.merges[0]))
    loaded = bpe.Tokenizer.load(str(tmp_path))
    assert loaded.merges == tokenizer.merges and loaded.encode(CORPUS) == tokenizer.encode(CORPUS)


@pytest.mark.parametrize("content, message", [
    (None, "no merges.txt"),
    ("something else\n1 2\n", "not a merges file"),
    (bpe.FORMAT_LINE + "\n", "holds 0 merges"),
    (bpe.FORMAT_LINE + "\n32 32\n256\n", "line 3"),
    (bpe.FORMAT_LINE + "\n32 257\n", "below 256"),   # a merge may only use tokens that exist before it
    (bpe.FORMAT_LINE + "\n32 -1\n", "line 2"),
])
def test_bad_merges_files(tmp_path, content, message):
    if content is not None:
        (tmp_path / bpe.MERGES_FILE).write_text(content)
    with pytest.raises(bpe.BPEError, match=message):
        bpe.Tokenizer.load(str(tmp_path))


@pytest.mark.parametrize("vocab_size, text, message", [
    (256, CORPUS, "between 257"),
    (65537, CORPUS, "between 257"),
    (1000, "ab ab", "too little text"),
])
def test_bad_training_input(vocab_size, text, message):
    with pytest.raises(bpe.BPEError, match=message):
        bpe.Tokenizer.train(text, vocab_size)


def test_decoding_an_unknown_id_is_an_error(tokenizer):
    with pytest.raises(bpe.BPEError, match="not in this vocabulary"):
        tokenizer.decode([65, 400])


# ---------------------------------------------------------------------------------------------
# datasets

def decoded(data_dir):
    train, val, meta = prepare.load_dataset(str(data_dir))
    tok = bpe.Tokenizer.load(str(data_dir))
    return tok.decode_bytes(np.asarray(train).tolist()), tok.decode_bytes(np.asarray(val).tolist()), meta


def test_file_dataset_decodes_to_the_file(tmp_path):
    path = tmp_path / "my.txt"
    path.write_text(CORPUS, encoding="utf-8")
    meta = prepare.build_file_bpe(str(path), str(tmp_path / "ds"), 300)
    train, val, loaded = decoded(tmp_path / "ds")
    assert (train + val).decode() == CORPUS
    assert meta == loaded and meta["level"] == "bpe" and meta["vocab_size"] == 300 and meta["dtype"] == "uint16"
    assert meta["bytes_per_token"] > 1.5


def test_stdlib_bpe_dataset_is_the_byte_dataset_retokenized(tmp_path, monkeypatch):
    monkeypatch.setattr(prepare, "DATA_ROOT", str(tmp_path))  # the byte dataset it starts from lives here
    prepare.build_stdlib(str(tmp_path / "stdlib"), max_bytes=200_000)
    # train.py's first use of "stdlib_bpe300" builds it
    assert prepare.build_named_if_missing("stdlib_bpe300", str(tmp_path / "stdlib_bpe300"))
    assert not prepare.build_named_if_missing("stdlib_bpe300", str(tmp_path / "stdlib_bpe300"))  # now it exists
    byte_train, byte_val, _ = prepare.load_dataset(str(tmp_path / "stdlib"))
    train, val, meta = decoded(tmp_path / "stdlib_bpe300")
    assert train == bytes(byte_train) and val == bytes(byte_val)
    assert meta["vocab_size"] == 300 and prepare.parse_bpe_name("stdlib_bpe300") == 300
    assert prepare.parse_bpe_name("stdlib") is None and prepare.parse_bpe_name("my_bpe300") is None


def test_cli_builds_a_bpe_dataset_from_a_file(tmp_path):
    with dataset_built_by_cli(tmp_path, CORPUS, "--vocab_size=300") as data_dir:
        _, _, meta = decoded(data_dir)
        assert meta["vocab_size"] == 300


@pytest.mark.parametrize("args, text, message", [
    (["--vocab_size=100"], CORPUS, "--vocab_size must be 256 (bytes) or between 257"),
    (["--vocab_size=70000"], CORPUS, "--vocab_size must be 256 (bytes) or between 257"),
    (["--vocab_size=5000"], CORPUS, "too little text"),
    (["--vocab_size=300", "--level=char"], CORPUS, "does not combine"),
])
def test_bad_bpe_arguments_are_one_line_errors(tmp_path, args, text, message):
    path = tmp_path / "input.txt"
    path.write_text(text, encoding="utf-8")
    result = run_prepare("--input", str(path), "--name", "_pytest_never_written", *args)
    assert result.returncode != 0 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "error" in result.stderr.strip().splitlines()[-1]
    assert not os.path.exists(os.path.join(ROOT, "data", "_pytest_never_written"))
