"""data/bpe.py against a slow, obviously-right BPE, and the BPE datasets of data/prepare.py."""
import errno
import hashlib
import json.decoder
import os
import random
import sys
from collections import Counter

import numpy as np
import pytest
import torch

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


# ---------------------------------------------------------------------------------------------
# bad input: one BPEError, one line, naming the problem and what to do; no file touched

def files_in(folder):
    """{path: sha256} of every file under folder."""
    hashes = {}
    for root, _, names in os.walk(folder):
        for name in names:
            with open(os.path.join(root, name), "rb") as f:
                hashes[os.path.join(root, name)] = hashlib.sha256(f.read()).hexdigest()
    return hashes


def merges_file(tmp, content):
    """A directory holding merges.txt with `content` (str, or bytes as they are)."""
    folder = tmp / f"m{len(os.listdir(tmp))}"
    folder.mkdir()
    data = content if isinstance(content, bytes) else content.encode("utf-8")
    (folder / bpe.MERGES_FILE).write_bytes(data)
    return folder


def loading(tmp, content):
    """The call that loads a merges.txt holding content (made now, before the files are hashed)."""
    folder = merges_file(tmp, content)
    return lambda: bpe.Tokenizer.load(str(folder))


def disk_full_on_write(monkeypatch):
    """Every file bpe.py opens for writing fails as on a full disk, after part of its first write."""
    real_open = open

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def write(self, text):
            self.f.write(text[:10])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def fake_open(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        return FullDisk(f) if "w" in mode else f
    monkeypatch.setattr(bpe, "open", fake_open, raising=False)


F = bpe.FORMAT_LINE + "\n"  # a merges file begins with this line
# name -> (setup(tok, tmp, monkeypatch) -> the bad call, pieces its message must hold)
BAD_CALLS = {
    "encode: a lone high surrogate": (lambda t, d, m: lambda: t.encode("a\ud800b"), ["lone surrogate U+D800", "index 1"]),
    "encode: half an emoji (JSON \\ud83d)": (lambda t, d, m: lambda: t.encode("x \ud83d"), ["U+D83D", "replace it"]),
    "encode: a low surrogate below the escapes": (lambda t, d, m: lambda: t.encode("\udc7f"), ["U+DC7F"]),
    "encode: a low surrogate above the escapes": (lambda t, d, m: lambda: t.encode("ok \udd00"), ["U+DD00"]),
    "encode: the last surrogate": (lambda t, d, m: lambda: t.encode("\udfff"), ["U+DFFF"]),
    "encode: bytes": (lambda t, d, m: lambda: t.encode(b"abc"), ["encode takes a str", "bytes", "raw.decode"]),
    "encode: None": (lambda t, d, m: lambda: t.encode(None), ["encode takes a str", "NoneType"]),
    "encode: an int": (lambda t, d, m: lambda: t.encode(42), ["encode takes a str", "int"]),
    "encode: a list of str": (lambda t, d, m: lambda: t.encode(["a"]), ["encode takes a str", "list"]),
    "train: vocab_size a str": (lambda t, d, m: lambda: bpe.Tokenizer.train(CORPUS, "300"), ["must be an integer", "str"]),
    "train: vocab_size 300.0": (lambda t, d, m: lambda: bpe.Tokenizer.train(CORPUS, 300.0), ["must be an integer", "float"]),
    "train: vocab_size 300.5": (lambda t, d, m: lambda: bpe.Tokenizer.train(CORPUS, 300.5), ["must be an integer"]),
    "train: vocab_size True": (lambda t, d, m: lambda: bpe.Tokenizer.train(CORPUS, True), ["must be an integer", "bool"]),
    "train: vocab_size None": (lambda t, d, m: lambda: bpe.Tokenizer.train(CORPUS, None), ["must be an integer"]),
    "train: vocab_size 256": (lambda t, d, m: lambda: bpe.Tokenizer.train(CORPUS, 256), ["between 257"]),
    "train: vocab_size 65537": (lambda t, d, m: lambda: bpe.Tokenizer.train(CORPUS, 65537), ["between 257"]),
    "train: vocab_size negative": (lambda t, d, m: lambda: bpe.Tokenizer.train(CORPUS, -5), ["between 257", "-5"]),
    "train: text as bytes": (lambda t, d, m: lambda: bpe.Tokenizer.train(CORPUS.encode(), 300),
                             ["Tokenizer.train takes a str", "raw.decode"]),
    "train: text None": (lambda t, d, m: lambda: bpe.Tokenizer.train(None, 300), ["takes a str", "NoneType"]),
    "train: a lone surrogate": (lambda t, d, m: lambda: bpe.Tokenizer.train(CORPUS + "\ud800", 300),
                                ["Tokenizer.train", "lone surrogate U+D800"]),
    "train: too little text": (lambda t, d, m: lambda: bpe.Tokenizer.train("ab ab", 1000),
                               ["too little text", "smaller vocab_size"]),
    "train: no text": (lambda t, d, m: lambda: bpe.Tokenizer.train("", 300), ["too little text"]),
    "train: progress not callable": (lambda t, d, m: lambda: bpe.Tokenizer.train(CORPUS, 300, progress="bar"),
                                     ["progress must be None or a function"]),
    "Tokenizer: a merge of a token not yet made": (lambda t, d, m: lambda: bpe.Tokenizer([(300, 1)]),
                                                   ["merges[0]", "below 256", "(300, 1)"]),
    "Tokenizer: a merge of one token": (lambda t, d, m: lambda: bpe.Tokenizer([(1,)]), ["merges[0]", "two token ids"]),
    "Tokenizer: a negative id": (lambda t, d, m: lambda: bpe.Tokenizer([(-1, 2)]), ["merges[0]"]),
    "Tokenizer: a float id": (lambda t, d, m: lambda: bpe.Tokenizer([(1.0, 2)]), ["merges[0]"]),
    "Tokenizer: a pair merged twice": (lambda t, d, m: lambda: bpe.Tokenizer([(1, 2), (1, 2)]),
                                       ["merges[1]", "merged twice"]),
    "Tokenizer: merges a str": (lambda t, d, m: lambda: bpe.Tokenizer("1 2"), ["list of pairs"]),
    "decode: a negative id": (lambda t, d, m: lambda: t.decode([65, -1]), ["token id -1", "position 1", "0 .. 399"]),
    "decode: an id too large": (lambda t, d, m: lambda: t.decode([400]), ["token id 400", "0 .. 399"]),
    "decode: a float": (lambda t, d, m: lambda: t.decode([65.0]), ["token id 65.0"]),
    "decode: a bool": (lambda t, d, m: lambda: t.decode([True]), ["token id True"]),
    "decode: None": (lambda t, d, m: lambda: t.decode(None), ["decode takes a sequence of token ids", "NoneType"]),
    "decode: one int": (lambda t, d, m: lambda: t.decode(65), ["decode takes a sequence of token ids", "int"]),
    "decode: a str": (lambda t, d, m: lambda: t.decode("abc"), ["decode takes a sequence of token ids", "str"]),
    "decode: a nested list": (lambda t, d, m: lambda: t.decode([[65, 66]]), ["position 0", "[65, 66]", "flat list"]),
    "decode: a 2-d array": (lambda t, d, m: lambda: t.decode(np.zeros((40, 40), int)), ["position 0", "flat list"]),
    "decode: a numpy array with -1": (lambda t, d, m: lambda: t.decode(np.array([65, -1])), ["token id -1"]),
    "decode: a float tensor": (lambda t, d, m: lambda: t.decode(torch.tensor([65.0])), ["token id 65.0"]),
    "decode: a generator": (lambda t, d, m: lambda: t.decode(i for i in [65, 66, -7]), ["token id -7", "position 2"]),
    "decode_bytes: a negative id": (lambda t, d, m: lambda: t.decode_bytes([-1]), ["token id -1"]),
    "load: None": (lambda t, d, m: lambda: bpe.Tokenizer.load(None), ["expected a directory path"]),
    "load: no such directory": (lambda t, d, m: lambda: bpe.Tokenizer.load(str(d / "nope")), ["is not a directory"]),
    "load: no merges.txt": (lambda t, d, m: lambda: bpe.Tokenizer.load(str(d)), ["no merges.txt", "data/prepare.py"]),
    "load: not a merges file": (lambda t, d, m: loading(d, "something else\n1 2\n"),
                                ["not a merges file", "rebuild"]),
    "load: a binary file": (lambda t, d, m: loading(d, bytes(range(256))),
                            ["damaged (not UTF-8 text", "rebuild"]),
    "load: a damaged byte": (lambda t, d, m: loading(d, F.encode() + b"32 \xff\n"),
                             ["damaged (not UTF-8 text: byte 0xff at offset 15)", "rebuild"]),
    "load: superscript digits": (lambda t, d, m: loading(d, F + "\u00b2 1\n"),
                                 ["line 2", "expected two token ids"]),
    "load: Arabic-Indic digits": (lambda t, d, m: loading(d, F + "\u0663\u0662 1\n"),
                                  ["line 2", "expected two token ids"]),
    "load: no merges": (lambda t, d, m: loading(d, F), ["holds 0 merges"]),
    "load: a line of one id": (lambda t, d, m: loading(d, F + "32 32\n256\n"),
                               ["line 3"]),
    "load: cut off mid-line": (lambda t, d, m: loading(d, F + "32 32\n256 1"),
                               ["ends mid-line", "rebuild"]),
    "load: a line of three ids": (lambda t, d, m: loading(d, F + "32 32 32\n"),
                                  ["line 2"]),
    "load: a token not yet made": (lambda t, d, m: loading(d, F + "32 257\n"),
                                   ["line 2", "below 256"]),
    "load: a negative id": (lambda t, d, m: loading(d, F + "32 -1\n"), ["line 2"]),
    "load: a pair merged twice": (lambda t, d, m: loading(d, F + "1 2\n3 4\n1 2\n"),
                                  ["line 4", "merged twice"]),
    "save: None": (lambda t, d, m: lambda: t.save(None), ["expected a directory path"]),
    "save: no such directory": (lambda t, d, m: lambda: t.save(str(d / "nope")), ["is not a directory", "create it"]),
    "save: a file, not a directory": (lambda t, d, m: (lambda f: lambda: t.save(f))(str(merges_file(d, F) / "merges.txt")),
                                      ["is not a directory"]),
    "save: a full disk": (lambda t, d, m: (t.save(str(d)), disk_full_on_write(m), lambda: t.save(str(d)))[-1],
                          ["cannot write", "merges.txt", "No space left on device", "free some space"]),
}


@pytest.mark.parametrize("case", BAD_CALLS)
def test_bad_input_is_one_bpe_error_line_and_touches_no_file(case, tokenizer, tmp_path, monkeypatch):
    setup, pieces = BAD_CALLS[case]
    call = setup(tokenizer, tmp_path, monkeypatch)
    before = files_in(tmp_path)
    with pytest.raises(bpe.BPEError) as error:  # any other exception type fails the test, with its traceback
        call()
    message = str(error.value)
    assert "\n" not in message and len(message) < 300, message
    for piece in pieces:
        assert piece in message, f"{case}: {piece!r} not in {message!r}"
    assert files_in(tmp_path) == before, f"{case}: a file changed, appeared (a temporary one?) or went"


# ---------------------------------------------------------------------------------------------
# each class of bad input, on its own

def test_every_text_round_trips_except_lone_surrogates_which_are_refused(tokenizer):
    """The promise of the module docstring, over the whole code space."""
    characters = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    assert "".join(bpe.SPLIT_RE.findall(characters)) == characters  # the pre-split loses no character
    sample = characters[:0x3000] + characters[0x3000::7]  # all of the first 12 k (most scripts), then every 7th
    for start in range(0, len(sample), 500):
        text = sample[start:start + 500]
        assert tokenizer.decode(tokenizer.encode(text)) == text
    rng = random.Random(0)
    for _ in range(100):
        text = "".join(rng.choice(characters) for _ in range(rng.randrange(1, 60)))
        assert tokenizer.decode(tokenizer.encode(text)) == text
    # surrogates: U+DC80..U+DCFF are bytes that were not UTF-8 and come back as those bytes; the rest are refused
    for code in range(0xD800, 0xE000):
        text = "ab " + chr(code)
        if 0xDC80 <= code <= 0xDCFF:
            assert tokenizer.decode_bytes(tokenizer.encode(text)) == b"ab " + bytes([code - 0xDC00])
        else:
            with pytest.raises(bpe.BPEError, match=f"lone surrogate U\\+{code:04X} at index 3"):
                tokenizer.encode(text)
    with pytest.raises(bpe.BPEError, match="lone surrogate"):
        bpe.Tokenizer.train(CORPUS + "\ud83d", 300)
    for _ in range(100):  # any bytes at all, read with surrogateescape, come back
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60)))
        assert tokenizer.decode_bytes(tokenizer.encode(raw.decode("utf-8", "surrogateescape"))) == raw


def test_vocab_size_must_be_an_integer():
    for vocab_size in ("300", 300.0, 300.5, True, None, [300], np.float64(300), torch.tensor(300.5)):
        with pytest.raises(bpe.BPEError, match="vocab_size must be an integer"):
            bpe.Tokenizer.train(CORPUS, vocab_size)  # 300.5 used to learn 45 merges: a vocabulary of 301
    assert bpe.Tokenizer.train(CORPUS, np.int64(260)).vocab_size == 260  # a numpy integer is an integer
    assert bpe.Tokenizer.train(CORPUS, torch.tensor(260)).vocab_size == 260


# every form an id can come in: unknown ids are refused, known ones decode alike
UNKNOWN_IDS = {
    "negative int": [65, -1], "too large": [65, 400], "huge": [2 ** 70], "float": [65.0], "nan": [float("nan")],
    "bool": [True], "str id": ["65"], "None id": [None], "nested list": [[65]], "tuple inside": [(65,)],
    "numpy negative": np.array([65, -1]), "numpy too large": np.array([65, 400], dtype=np.uint16),
    "numpy float": np.array([65.0, 66.0]), "numpy bool": np.array([True]), "numpy 2-d": np.array([[65, 66]]),
    "numpy scalar in a list": [np.int64(-1)], "numpy float scalar": [np.float32(65)],
    "torch negative": torch.tensor([65, -1]), "torch too large": torch.tensor([400]),
    "torch float": torch.tensor([65.0]), "torch bool": torch.tensor([True]), "torch 2-d": torch.tensor([[65]]),
    "0-d tensor in a list": [torch.tensor(-1)], "generator": (i for i in [65, -1]), "None": None, "int": 65,
    "str": "AB", "bytes": b"AB", "set": {65}, "dict": {65: 66},
}


@pytest.mark.parametrize("form", UNKNOWN_IDS)
def test_decoding_an_unknown_id_is_an_error_in_every_form(tokenizer, form):
    for decode in (tokenizer.decode, tokenizer.decode_bytes):
        ids = UNKNOWN_IDS[form]
        if form == "generator":
            ids = (i for i in [65, -1])
        with pytest.raises(bpe.BPEError) as error:
            decode(ids)
        assert "\n" not in str(error.value) and len(str(error.value)) < 300


@pytest.mark.parametrize("ids", [
    [65, 399, 0], (65, 399, 0), np.array([65, 399, 0]), np.array([65, 399, 0], dtype=np.uint16),
    np.array([65, 399, 0], dtype=np.int32), torch.tensor([65, 399, 0]), torch.tensor([65, 399, 0], dtype=torch.int16),
    [np.int64(65), np.uint16(399), np.int8(0)], [torch.tensor(65), torch.tensor(399), torch.tensor(0)],
], ids=lambda ids: type(ids).__name__ + str(getattr(ids, "dtype", "")))
def test_known_ids_decode_alike_in_every_form(tokenizer, ids):
    assert tokenizer.decode_bytes(ids) == tokenizer.vocab[65] + tokenizer.vocab[399] + tokenizer.vocab[0]


def arabic_indic(line):
    """b"257 258" -> "٢57 258" in UTF-8: the first digit written as an Arabic-Indic digit."""
    return (chr(0x660 + int(line[:1])) + line[1:].decode()).encode()


def test_a_damaged_merges_file_is_one_error_line(tokenizer, tmp_path):
    path = tokenizer.save(str(tmp_path))
    good = open(path, "rb").read()
    lines = good.split(b"\n")
    for damaged, message in [
        (good[:30] + b"\xe9" + good[31:], "not UTF-8 text"),                        # a Latin-1 byte
        (b"\n".join(lines[:5] + [arabic_indic(lines[5])] + lines[6:]), "line 6"),  # "٢57 258": str.isdigit says yes
        (b"\n".join(lines[:5] + [lines[2]] + lines[6:]), "line 6: the pair"),      # a merge repeated
        (good[:good.rindex(b" ", 0, len(good) // 2) + 2], "ends mid-line"),          # "12 345" cut to "12 3"
    ]:
        with open(path, "wb") as f:
            f.write(damaged)
        with pytest.raises(bpe.BPEError) as error:
            bpe.Tokenizer.load(str(tmp_path))
        assert message in str(error.value) and "\n" not in str(error.value), str(error.value)
    with open(path, "wb") as f:  # cut at a line end, it is a valid, shorter merges file, and loads as that
        f.write(b"\n".join(lines[:11]) + b"\n")
    assert bpe.Tokenizer.load(str(tmp_path)).merges == tokenizer.merges[:10]


def test_save_on_a_full_disk_leaves_the_old_file_and_no_temporary_one(tokenizer, tmp_path, monkeypatch):
    old = bpe.Tokenizer(tokenizer.merges[:10])
    path = old.save(str(tmp_path))
    before = files_in(tmp_path)
    disk_full_on_write(monkeypatch)
    with pytest.raises(bpe.BPEError, match=f"cannot write {path} \\(No space left on device\\); free some space"):
        tokenizer.save(str(tmp_path))
    assert files_in(tmp_path) == before and bpe.Tokenizer.load(str(tmp_path)).merges == old.merges


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
    result = run_prepare("--input", str(path), "--out", str(tmp_path / "never_written"), *args)
    assert result.returncode != 0 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "error" in result.stderr.strip().splitlines()[-1]
    assert not os.path.exists(tmp_path / "never_written")
