"""
Build a token dataset with no download at all.

    python data/prepare.py                            # default: data/stdlib/ from Python's own source
    python data/prepare.py --input my.txt --name my   # data/my/ from any UTF-8 text file
    python data/prepare.py --input my.txt --level=char

The default dataset is real text that every machine with Python already has: the
source files of the Python standard library (site-packages excluded), read as
bytes, so the vocabulary is the 256 byte values. Files are taken in sorted order
and every 10th file goes to the validation split, so validation is unseen code,
not a slice of a file the model trains on. The default corpus is capped at
--max_bytes (sorted order, so the cap is deterministic for a given Python).

A custom file is split 90% / 10% (the first 90% trains). With --level=char the
vocabulary is the file's distinct characters instead of bytes.

    python data/prepare.py --vocab_size=2048          # data/stdlib_bpe2048/: the same text, byte-level BPE
    python data/prepare.py --input my.txt --vocab_size=1024   # data/my_bpe1024/

With --vocab_size=N > 256 the tokens are byte-level BPE (data/bpe.py): N - 256 merges learned on
the training split only, merges.txt saved beside the token arrays, so a dataset can always be
decoded (bpe.Tokenizer.load(dataset_dir).decode(ids)). train.py builds stdlib_bpeN on first use.

Each dataset directory holds:
    train.bin, val.bin   token ids, flat numpy arrays (uint8 or uint16, see meta.json)
    meta.json            vocab_size, dtype, level, source, token counts (and chars, for --level=char)
    merges.txt           the BPE merges (BPE datasets only)
"""
import argparse
import json
import os
import re
import sys
import sysconfig

import numpy as np
from tqdm import tqdm

import bpe  # data/bpe.py, beside this file

DATA_ROOT = os.path.dirname(os.path.abspath(__file__))
MIN_TOKENS = 1000  # below this there is not enough text to train or validate on


class DataError(Exception):
    """Bad input: reported to the user as one line, without a traceback."""


def write_dataset(out_dir, train_ids, val_ids, meta):
    """Write train.bin, val.bin and meta.json; each file appears atomically (tmp + rename)."""
    os.makedirs(out_dir, exist_ok=True)
    dtype = np.uint8 if meta["vocab_size"] <= 256 else np.uint16
    meta = dict(meta, dtype=np.dtype(dtype).name, train_tokens=len(train_ids), val_tokens=len(val_ids))
    for name, ids in (("train.bin", train_ids), ("val.bin", val_ids)):
        tmp = os.path.join(out_dir, name + ".tmp")
        np.asarray(ids, dtype=dtype).tofile(tmp)
        os.replace(tmp, os.path.join(out_dir, name))
    tmp = os.path.join(out_dir, "meta.json.tmp")
    with open(tmp, "w") as f:
        json.dump(meta, f, indent=2)
    os.replace(tmp, os.path.join(out_dir, "meta.json"))  # written last: its presence means "complete"
    return meta


def stdlib_source_files():
    """Sorted paths of the standard library's .py files (no site-packages)."""
    stdlib = sysconfig.get_paths()["stdlib"]
    paths = []
    for root, dirs, files in os.walk(stdlib):
        dirs[:] = sorted(d for d in dirs if d not in ("site-packages", "dist-packages", "__pycache__"))
        paths += [os.path.join(root, f) for f in sorted(files) if f.endswith(".py")]
    return stdlib, paths


def build_stdlib(out_dir=os.path.join(DATA_ROOT, "stdlib"), max_bytes=16_000_000):
    """The default dataset: byte-level Python standard library source."""
    stdlib, paths = stdlib_source_files()
    train_parts, val_parts, total = [], [], 0
    for i, path in enumerate(paths):
        if total >= max_bytes:
            break
        with open(path, "rb") as f:
            text = f.read() + b"\n"
        total += len(text)
        (val_parts if i % 10 == 9 else train_parts).append(text)  # every 10th file -> validation
    train_ids = np.frombuffer(b"".join(train_parts), dtype=np.uint8)
    val_ids = np.frombuffer(b"".join(val_parts), dtype=np.uint8)
    if len(train_ids) < MIN_TOKENS or len(val_ids) < MIN_TOKENS:
        raise DataError(f"found too little Python source under {stdlib}; use --input FILE instead")
    meta = {
        "vocab_size": 256,
        "level": "byte",
        "source": f"Python {sys.version.split()[0]} standard library ({stdlib})",
        "files": len(train_parts) + len(val_parts),
    }
    return write_dataset(out_dir, train_ids, val_ids, meta)


def read_text_file(path):
    """(raw bytes, text) of a UTF-8 text file, or a DataError that says what is wrong."""
    if not os.path.isfile(path):
        raise DataError(f"input file {path!r} does not exist")
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.strip():
        raise DataError(f"input file {path!r} is empty")
    if b"\x00" in raw:
        raise DataError(f"input file {path!r} looks binary (it has NUL bytes); give a UTF-8 text file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"input file {path!r} is not UTF-8 text (bad byte at offset {e.start})")
    return raw, text


def build_from_file(path, out_dir, level="byte"):
    """A dataset from one UTF-8 text file: first 90% train, last 10% validation."""
    raw, text = read_text_file(path)
    if level == "byte":
        ids, meta = np.frombuffer(raw, dtype=np.uint8), {"vocab_size": 256}
    else:
        chars = sorted(set(text))
        index = {c: i for i, c in enumerate(chars)}
        ids, meta = np.array([index[c] for c in text], dtype=np.int64), {"vocab_size": len(chars), "chars": chars}
    if len(ids) < MIN_TOKENS:
        raise DataError(f"input file {path!r} has {len(ids)} tokens; need at least {MIN_TOKENS}")
    n_train = int(0.9 * len(ids))
    meta.update(level=level, source=os.path.abspath(path))
    return write_dataset(out_dir, ids[:n_train], ids[n_train:], meta)


# ---------------------------------------------------------------------------------------------
# BPE datasets (data/bpe.py): the same text, in tokens of 3 bytes or so instead of 1

def bpe_name(base, vocab_size):
    """'stdlib', 2048 -> 'stdlib_bpe2048'."""
    return f"{base}_bpe{vocab_size}"


def parse_bpe_name(name):
    """'stdlib_bpe2048' -> 2048; None for any other name."""
    match = re.fullmatch(r"stdlib_bpe(\d+)", name)
    return int(match.group(1)) if match else None


def build_bpe(out_dir, train_text, val_text, vocab_size, source):
    """Learn vocab_size - 256 merges on the training text, encode both splits, save the merges beside them."""
    with tqdm(total=vocab_size - 256, desc=f"learning BPE merges (vocab {vocab_size})", unit="merge",
              mininterval=0.5) as bar:
        tokenizer = bpe.Tokenizer.train(train_text, vocab_size, progress=lambda n: bar.update(n - bar.n))
    print(f"encoding {len(train_text) + len(val_text):,} characters ...", file=sys.stderr)
    train_ids, val_ids = tokenizer.encode(train_text), tokenizer.encode(val_text)
    if len(train_ids) < MIN_TOKENS or len(val_ids) < MIN_TOKENS:
        raise DataError(f"the text gives {len(train_ids)} train and {len(val_ids)} val tokens; "
                        f"need at least {MIN_TOKENS} each")
    os.makedirs(out_dir, exist_ok=True)
    tokenizer.save(out_dir)  # before meta.json, which is written last and means "complete"
    n_bytes = len(bpe.to_bytes(train_text))
    meta = {"vocab_size": vocab_size, "level": "bpe", "merges": bpe.MERGES_FILE, "source": source,
            "bytes_per_token": round(n_bytes / len(train_ids), 4)}
    return write_dataset(out_dir, train_ids, val_ids, meta)


def build_stdlib_bpe(vocab_size, out_dir=None, max_bytes=16_000_000):
    """data/stdlib_bpeN: the default dataset (built first if missing), re-tokenized by BPE.
    Bytes that are not UTF-8 (a few Latin-1 files) ride along as surrogate escapes, so the
    tokens decode to exactly the bytes of data/stdlib."""
    out_dir = out_dir or os.path.join(DATA_ROOT, bpe_name("stdlib", vocab_size))
    byte_dir = os.path.join(DATA_ROOT, "stdlib")
    if not os.path.isfile(os.path.join(byte_dir, "meta.json")):
        build_stdlib(byte_dir, max_bytes)
    train, val, meta = load_dataset(byte_dir)
    texts = [bytes(split).decode("utf-8", "surrogateescape") for split in (train, val)]
    return build_bpe(out_dir, *texts, vocab_size, source=meta["source"])


def build_file_bpe(path, out_dir, vocab_size):
    """A BPE dataset from one UTF-8 text file: merges learned on the first 90%, which trains."""
    _, text = read_text_file(path)
    n_train = int(0.9 * len(text))
    return build_bpe(out_dir, text[:n_train], text[n_train:], vocab_size, source=os.path.abspath(path))


def build_named_if_missing(name, data_dir):
    """train.py's first use of a built-in dataset: 'stdlib' or 'stdlib_bpeN'. True if it built one."""
    if os.path.isfile(os.path.join(data_dir, "meta.json")):
        return False
    if name == "stdlib":
        print("building the default dataset (Python standard library source) ...")
        build_stdlib(data_dir)
        return True
    vocab_size = parse_bpe_name(name)
    if vocab_size is None:
        return False
    print(f"building {name} (Python standard library source, BPE vocabulary {vocab_size}) ...")
    try:
        build_stdlib_bpe(vocab_size, data_dir)
    except bpe.BPEError as e:
        raise DataError(str(e))
    return True


def load_dataset(data_dir):
    """(train, val, meta): token arrays as read-only memory maps, and the metadata."""
    meta_path = os.path.join(data_dir, "meta.json")
    if not os.path.isfile(meta_path):
        raise DataError(f"no dataset in {data_dir!r} (meta.json missing); build it with data/prepare.py")
    with open(meta_path) as f:
        meta = json.load(f)
    train = np.memmap(os.path.join(data_dir, "train.bin"), dtype=meta["dtype"], mode="r")
    val = np.memmap(os.path.join(data_dir, "val.bin"), dtype=meta["dtype"], mode="r")
    return train, val, meta


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", help="a UTF-8 text file (default: the Python standard library)")
    parser.add_argument("--name", help="dataset directory name under data/ (default: stdlib, or the file's stem)")
    parser.add_argument("--level", choices=("byte", "char"), default="byte", help="tokens: bytes or characters")
    parser.add_argument("--max_bytes", type=int, default=16_000_000, help="cap on the default corpus size")
    parser.add_argument("--vocab_size", type=int, default=256,
                        help="256: bytes; more: byte-level BPE with vocab_size - 256 merges (data/bpe.py)")
    args = parser.parse_args(argv)
    if args.input is None and args.level != "byte":
        parser.error("--level=char needs --input (the default corpus is byte-level)")
    if args.vocab_size != 256 and args.level != "byte":
        parser.error("--vocab_size is for byte-level BPE; it does not combine with --level=char")
    name = args.name or ("stdlib" if args.input is None else os.path.splitext(os.path.basename(args.input))[0])
    if args.vocab_size != 256 and not args.name:
        name = bpe_name(name, args.vocab_size)
    out_dir = os.path.join(DATA_ROOT, name)
    try:
        if args.vocab_size != 256:
            if not 257 <= args.vocab_size <= bpe.MAX_VOCAB:  # checked before any work
                raise DataError(f"--vocab_size must be 256 (bytes) or between 257 and {bpe.MAX_VOCAB}, "
                                f"got {args.vocab_size}")
            meta = (build_stdlib_bpe(args.vocab_size, out_dir, args.max_bytes) if args.input is None
                    else build_file_bpe(args.input, out_dir, args.vocab_size))
        elif args.input is None:
            meta = build_stdlib(out_dir, args.max_bytes)
        else:
            meta = build_from_file(args.input, out_dir, args.level)
    except (DataError, bpe.BPEError) as e:
        sys.exit(f"prepare.py: error: {e}")
    print(f"wrote {out_dir}: {meta['train_tokens']:,} train and {meta['val_tokens']:,} val tokens, "
          f"vocab {meta['vocab_size']} ({meta['level']}-level) from {meta['source']}")


if __name__ == "__main__":
    main()
