"""
Build a token dataset with no download at all.

    python data/prepare.py                            # default: data/stdlib/ from Python's own source
    python data/prepare.py --input my.txt --name my   # data/my/ from any UTF-8 text file
    python data/prepare.py --input my.txt --level=char
    python data/prepare.py --input my.txt --overwrite # replace an existing data/my/

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
    train.bin, val.bin   token ids, flat numpy arrays (uint8, uint16 or uint32, see meta.json)
    meta.json            vocab_size, dtype, level, source, token counts (and chars, for --level=char)
    merges.txt           the BPE merges (BPE datasets only)

An existing dataset is never replaced silently: the command refuses unless --overwrite.
"""
import argparse
import hashlib
import json
import os
import re
import sys
import sysconfig

import numpy as np
from tqdm import tqdm

try:
    from data import bpe  # imported as data.prepare (by train.py and the tools)
except ImportError:
    import bpe  # run as `python data/prepare.py`: data/bpe.py lies beside this file

DATA_ROOT = os.path.dirname(os.path.abspath(__file__))
MIN_TOKENS = 1000  # below this there is not enough text to train or validate on


class DataError(Exception):
    """Bad input: reported to the user as one line, without a traceback."""


DATASET_FILES = ("train.bin", "val.bin", "meta.json")


def token_dtype(vocab_size):
    """The smallest unsigned type that holds every token id (< vocab_size): no id wraps around."""
    return np.uint8 if vocab_size <= 2 ** 8 else np.uint16 if vocab_size <= 2 ** 16 else np.uint32


def write_dataset(out_dir, train_ids, val_ids, meta):
    """Write train.bin, val.bin and meta.json; each file appears atomically (tmp + rename)."""
    os.makedirs(out_dir, exist_ok=True)
    dtype = token_dtype(meta["vocab_size"])
    meta = dict(meta, dtype=np.dtype(dtype).name, train_tokens=len(train_ids), val_tokens=len(val_ids))
    if os.path.exists(os.path.join(out_dir, "meta.json")):  # replacing a dataset: mark it incomplete first
        os.remove(os.path.join(out_dir, "meta.json"))
    for name, ids in (("train.bin", train_ids), ("val.bin", val_ids)):
        tmp = os.path.join(out_dir, f"{name}.tmp{os.getpid()}")
        np.asarray(ids, dtype=dtype).tofile(tmp)
        os.replace(tmp, os.path.join(out_dir, name))
    tmp = os.path.join(out_dir, f"meta.json.tmp{os.getpid()}")
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
        raise DataError(f"input file {path!r} does not exist" if not os.path.exists(path) else
                        f"input {path!r} is a directory, not a file; give one UTF-8 text file")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"input file {path!r} cannot be read ({e.strerror}); check its permissions")
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
    if os.path.exists(os.path.join(out_dir, "meta.json")):  # replacing a dataset: mark it incomplete first
        os.remove(os.path.join(out_dir, "meta.json"))
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


def dataset_dir(name):
    """The directory of dataset `name`: a path as given if it contains a separator, else data/<name>."""
    return name if os.sep in name else os.path.join(DATA_ROOT, name)


def windows(tokens, starts, block_size):
    """Input and target windows of a token array: x[b] = tokens[s : s + T], y[b] = tokens[s + 1 : s + T + 1]
    for each start s (T = block_size). tokens: 1-D integer array; starts: B ints. Returns two int64 [B, T]
    tensors: y is x shifted by one token, the next-token targets."""
    import torch  # (only the tools that make batches need it; building a dataset does not)
    idx = np.asarray(starts)[:, None] + np.arange(block_size + 1)
    chunk = torch.from_numpy(tokens[idx].astype(np.int64))
    return chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous()


def load_dataset(data_dir):
    """(train, val, meta): token arrays as read-only memory maps, and the metadata, checked."""
    meta_path = os.path.join(data_dir, "meta.json")
    if not os.path.isfile(meta_path):
        raise DataError(f"no dataset in {data_dir!r} (meta.json missing); build it with data/prepare.py")
    meta = read_meta(meta_path)
    splits = [read_tokens(os.path.join(data_dir, name), meta) for name in ("train.bin", "val.bin")]
    check_tokens(data_dir, *splits, meta)
    return splits[0], splits[1], meta


# Checks of a dataset directory: anything malformed is a one-line DataError saying how to rebuild it.
REBUILD = "rebuild it with data/prepare.py (--overwrite)"


def read_meta(meta_path):
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        raise DataError(f"{meta_path} is not readable JSON ({type(e).__name__}); {REBUILD}")
    if not isinstance(meta, dict):
        raise DataError(f"{meta_path} must hold a JSON object; {REBUILD}")
    vocab_size = meta.get("vocab_size")
    if not (isinstance(vocab_size, int) and not isinstance(vocab_size, bool) and vocab_size >= 1):
        raise DataError(f"{meta_path}: vocab_size must be a positive integer, got {vocab_size!r}; {REBUILD}")
    if meta.get("dtype") not in ("uint8", "uint16", "uint32") or np.iinfo(meta["dtype"]).max + 1 < vocab_size:
        raise DataError(f"{meta_path}: dtype {meta.get('dtype')!r} cannot hold vocab_size {vocab_size}; {REBUILD}")
    return meta


def read_tokens(path, meta):
    itemsize = np.dtype(meta["dtype"]).itemsize
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        raise DataError(f"{path} is {'missing' if not os.path.isfile(path) else 'empty'}; {REBUILD}")
    if os.path.getsize(path) % itemsize:
        raise DataError(f"{path} is truncated ({os.path.getsize(path)} bytes, not whole {meta['dtype']} "
                        f"tokens); {REBUILD}")
    return np.memmap(path, dtype=meta["dtype"], mode="r")


def check_tokens(data_dir, train, val, meta):
    for name, split in (("train", train), ("val", val)):
        if f"{name}_tokens" in meta and meta[f"{name}_tokens"] != len(split):
            raise DataError(f"{data_dir}: {name}.bin holds {len(split)} tokens but meta.json says "
                            f"{meta[f'{name}_tokens']} (a rebuild was interrupted?); {REBUILD}")
        if np.iinfo(split.dtype).max >= meta["vocab_size"] and split.max() >= meta["vocab_size"]:
            raise DataError(f"{data_dir}: {name}.bin holds token id {int(split.max())}, not below vocab_size "
                            f"{meta['vocab_size']}; {REBUILD}")


def fingerprint(data_dir, block=1 << 20, blocks=64):
    """A short hash of the tokens a run trains on: vocab_size, dtype, and each .bin file's size and bytes
    (a file over 64 MB: 64 evenly spaced 1 MB blocks of it). train.py stores it with the run, so a
    --resume on rebuilt or different data is caught; it takes about 0.1 s per 64 MB."""
    meta = read_meta(os.path.join(data_dir, "meta.json"))
    digest = hashlib.sha256(f"{meta['vocab_size']} {meta['dtype']}".encode())
    for name in ("train.bin", "val.bin"):
        path = os.path.join(data_dir, name)
        size = os.path.getsize(path)
        digest.update(f" {name} {size} ".encode())
        with open(path, "rb") as f:
            offsets = range(0, size, block) if size <= block * blocks else \
                [k * (size - block) // (blocks - 1) for k in range(blocks)]
            for offset in offsets:
                f.seek(offset)
                digest.update(f.read(block))
    return digest.hexdigest()[:16]


def check_output(out_dir, overwrite):
    """Refuse to replace an existing dataset (a train.py run may be using it) unless --overwrite."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise DataError(f"{out_dir} is a file, not a dataset directory; pick another --name")
    existing = [name for name in DATASET_FILES if os.path.exists(os.path.join(out_dir, name))]
    if existing and not overwrite:
        raise DataError(f"{out_dir} already holds a dataset ({', '.join(existing)}); pass --overwrite to replace it "
                        f"(runs trained on it will refuse --resume) or pick another --name")


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage + message; we keep to one line
        sys.exit(f"prepare.py: error: {message} (see --help)")


def main(argv=None):
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", help="a UTF-8 text file (default: the Python standard library)")
    parser.add_argument("--name", help="dataset directory name under data/ (default: stdlib, or the file's stem)")
    parser.add_argument("--level", choices=("byte", "char"), default="byte", help="tokens: bytes or characters")
    parser.add_argument("--max_bytes", type=int, default=16_000_000, help="cap on the default corpus size")
    parser.add_argument("--vocab_size", type=int, default=256,
                        help="256: bytes; more: byte-level BPE with vocab_size - 256 merges (data/bpe.py)")
    parser.add_argument("--overwrite", action="store_true", help="replace the dataset if data/NAME already exists")
    args = parser.parse_args(argv)
    if args.input is None and args.level != "byte":
        parser.error("--level=char needs --input (the default corpus is byte-level)")
    if args.vocab_size != 256 and args.level != "byte":
        parser.error("--vocab_size is for byte-level BPE; it does not combine with --level=char")
    if args.max_bytes < MIN_TOKENS:
        parser.error(f"--max_bytes must be at least {MIN_TOKENS}, got {args.max_bytes}")
    if args.input is not None:
        args.input = os.path.expanduser(args.input)
    name = args.name if args.name is not None else \
        ("stdlib" if args.input is None else os.path.splitext(os.path.basename(args.input))[0])
    if not name.strip() or name in (".", "..") or "/" in name or os.sep in name:
        parser.error(f"--name must be a plain directory name under data/ (like my_text), got {name!r}")
    if args.vocab_size != 256 and args.name is None:
        name = bpe_name(name, args.vocab_size)
    out_dir = os.path.join(DATA_ROOT, name)
    try:
        if args.vocab_size != 256 and not 257 <= args.vocab_size <= bpe.MAX_VOCAB:  # checked before any work
            raise DataError(f"--vocab_size must be 256 (bytes) or between 257 and {bpe.MAX_VOCAB}, "
                            f"got {args.vocab_size}")
        check_output(out_dir, args.overwrite)
        if args.vocab_size != 256:
            meta = (build_stdlib_bpe(args.vocab_size, out_dir, args.max_bytes) if args.input is None
                    else build_file_bpe(args.input, out_dir, args.vocab_size))
        elif args.input is None:
            meta = build_stdlib(out_dir, args.max_bytes)
        else:
            meta = build_from_file(args.input, out_dir, args.level)
    except (DataError, bpe.BPEError) as e:
        sys.exit(f"prepare.py: error: {e}")
    except OSError as e:
        sys.exit(f"prepare.py: error: cannot write {out_dir} ({e.strerror}); free space or pick another --name")
    print(f"wrote {out_dir}: {meta['train_tokens']:,} train and {meta['val_tokens']:,} val tokens, "
          f"vocab {meta['vocab_size']} ({meta['level']}-level) from {meta['source']}")


if __name__ == "__main__":
    main()
