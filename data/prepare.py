"""
Build a token dataset with no download at all.

    python data/prepare.py                            # default: data/stdlib/ from Python's own source
    python data/prepare.py --input my.txt --name my   # data/my/ from any UTF-8 text file
    python data/prepare.py --input my.txt --level=char
    python data/prepare.py --input my.txt --overwrite # replace an existing data/my/
    python data/prepare.py --input my.txt --out runs/my_data   # any directory (relative: to the current one)

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

An existing dataset is never replaced silently: the command refuses unless --overwrite. The files
are written all or nothing: a failure (a full disk) or Ctrl-C leaves no temporary file and the
directory as it was, and is reported in one line that says what to do.
"""
import argparse
import contextlib
import errno
import hashlib
import json
import os
import re
import signal
import sys
import sysconfig
import threading

import numpy as np
from tqdm import tqdm

try:
    from data import bpe  # imported as data.prepare (by train.py and the tools)
except ImportError:
    import bpe  # run as `python data/prepare.py`: data/bpe.py lies beside this file

DATA_ROOT = os.path.dirname(os.path.abspath(__file__))
MIN_TOKENS = 1000  # below this there is not enough text to train or validate on
MAX_BYTES = 16_000_000  # the default corpus's cap (--max_bytes)


class DataError(Exception):
    """Bad input: reported to the user as one line, without a traceback."""


DATASET_FILES = ("train.bin", "val.bin", "meta.json")
KNOWN_FILES = DATASET_FILES + (bpe.MERGES_FILE,)  # every file a dataset directory may hold


def token_dtype(vocab_size):
    """The smallest unsigned type that holds every token id (< vocab_size): no id wraps around."""
    return np.uint8 if vocab_size <= 2 ** 8 else np.uint16 if vocab_size <= 2 ** 16 else np.uint32


def write_tokens(f, ids, dtype):
    """Token ids -> the open binary file f, as one flat array of dtype (through f.write, whose OSError
    on a full disk carries the errno; numpy's tofile loses it)."""
    f.write(memoryview(np.ascontiguousarray(ids, dtype=dtype)).cast("B"))


def write_dataset(out_dir, train_ids, val_ids, meta, more_files=()):
    """Write train.bin, val.bin and meta.json (and more_files: (name, text) pairs, e.g. merges.txt) into
    out_dir, all or nothing (write_files_together). Returns meta with dtype and token counts added."""
    dtype = token_dtype(meta["vocab_size"])
    meta = dict(meta, dtype=np.dtype(dtype).name, train_tokens=len(train_ids), val_tokens=len(val_ids))
    files = [("train.bin", lambda f: write_tokens(f, train_ids, dtype)),
             ("val.bin", lambda f: write_tokens(f, val_ids, dtype))]
    files += [(name, lambda f, text=text: f.write(text.encode("utf-8"))) for name, text in more_files]
    files += [("meta.json", lambda f: f.write(json.dumps(meta, indent=2).encode("utf-8")))]
    write_files_together(out_dir, files)
    return meta


def write_files_together(out_dir, files):
    """files: (name, write(f)) pairs. Each file is first written in full to out_dir/NAME.tmpPID; only when
    all are written do they replace the old ones, in order (meta.json last: its presence means "complete").
    A failure or Ctrl-C before that removes every temporary file (and out_dir, if this call made it), so
    whatever out_dir held is unchanged; an OSError (a full disk ...) becomes a DataError naming the file."""
    made_dir, staged, path = not os.path.isdir(out_dir), [], out_dir
    try:
        os.makedirs(out_dir, exist_ok=True)
        for name, write in files:
            path = os.path.join(out_dir, name)
            staged.append((f"{path}.tmp{os.getpid()}", path))
            with open(staged[-1][0], "wb") as f:
                write(f)
        with ctrl_c_ignored():  # the swap takes a millisecond: all of it happens, or none
            swap_in(out_dir, staged)
    except BaseException as e:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.remove(tmp)
        if made_dir and os.path.isdir(out_dir) and not os.listdir(out_dir):
            os.rmdir(out_dir)
        if isinstance(e, OSError):
            raise write_error(path, e) from None
        raise


def swap_in(out_dir, staged):
    """Rename the staged files over the old ones. First the old meta.json goes (a dataset half old, half
    new is never marked complete), and so does an old file the new dataset does not have (the merges.txt
    of a BPE dataset rebuilt as bytes would otherwise still decode it)."""
    new_names = {os.path.basename(path) for _, path in staged}
    for name in ("meta.json", *(name for name in KNOWN_FILES if name not in new_names)):
        if os.path.exists(os.path.join(out_dir, name)):
            os.remove(os.path.join(out_dir, name))
    for tmp, path in staged:
        os.replace(tmp, path)


@contextlib.contextmanager
def ctrl_c_ignored():
    """Ignore Ctrl-C inside the block (signal handlers can only be set from the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def write_error(path, e):
    """An OSError while writing path -> a DataError that names the file and what to do."""
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "check that you may write there, or build the dataset elsewhere with --out DIR"
    else:  # ENOSPC, EDQUOT, EFBIG (a file size limit), EIO ...
        fix = "free some space on that disk, or build the dataset elsewhere with --out DIR"
    return DataError(f"cannot write {path} ({e.strerror or e}); {fix}")


def stdlib_source_files():
    """Sorted paths of the standard library's .py files (no site-packages)."""
    stdlib = sysconfig.get_paths()["stdlib"]
    paths = []
    for root, dirs, files in os.walk(stdlib):
        dirs[:] = sorted(d for d in dirs if d not in ("site-packages", "dist-packages", "__pycache__"))
        paths += [os.path.join(root, f) for f in sorted(files) if f.endswith(".py")]
    return stdlib, paths


def build_stdlib(out_dir=os.path.join(DATA_ROOT, "stdlib"), max_bytes=MAX_BYTES):
    """The default dataset: byte-level Python standard library source, files in sorted order until
    max_bytes are taken (meta.json records the cap)."""
    stdlib, paths = stdlib_source_files()
    train_parts, val_parts, total = [], [], 0
    for i, path in enumerate(paths):
        if total >= max_bytes:
            break
        try:
            with open(path, "rb") as f:
                text = f.read() + b"\n"
        except OSError as e:
            raise DataError(f"cannot read {path} ({e.strerror}); check its permissions, or build from one "
                            f"file with --input FILE") from None
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
        "max_bytes": max_bytes,
    }
    return write_dataset(out_dir, train_ids, val_ids, meta)


def read_text_file(path):
    """(raw bytes, text) of a UTF-8 text file, or a DataError that says what is wrong."""
    if not os.path.isfile(path):
        raise DataError(f"input file {path!r} does not exist; check the path" if not os.path.exists(path) else
                        f"input {path!r} is a directory, not a file; give one UTF-8 text file" if os.path.isdir(path)
                        else f"input {path!r} is not a regular file (a device or pipe?); give one UTF-8 text file")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"input file {path!r} cannot be read ({e.strerror}); check its permissions")
    if not raw.strip():
        raise DataError(f"input file {path!r} is empty; give a file with some text")
    if b"\x00" in raw:
        raise DataError(f"input file {path!r} looks binary (it has NUL bytes); give a UTF-8 text file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"input file {path!r} is not UTF-8 text (bad byte at offset {e.start}); convert it, e.g. "
                        f"iconv -f latin1 -t utf-8")
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
        raise DataError(f"input file {path!r} has {len(ids)} tokens; need at least {MIN_TOKENS}: give a longer file")
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
    n_bytes = len(bpe.to_bytes(train_text))
    meta = {"vocab_size": vocab_size, "level": "bpe", "merges": bpe.MERGES_FILE, "source": source,
            "bytes_per_token": round(n_bytes / len(train_ids), 4)}
    return write_dataset(out_dir, train_ids, val_ids, meta, more_files=[(bpe.MERGES_FILE, tokenizer.merges_text())])


def build_stdlib_bpe(vocab_size, out_dir=None, max_bytes=None):
    """data/stdlib_bpeN: the default dataset data/stdlib (built first if missing, capped at max_bytes,
    default MAX_BYTES), re-tokenized by BPE. Bytes that are not UTF-8 (a few Latin-1 files) ride along
    as surrogate escapes, so the tokens decode to exactly the bytes of data/stdlib. A max_bytes that
    data/stdlib was not built with is a DataError (it would be ignored)."""
    out_dir = out_dir or os.path.join(DATA_ROOT, bpe_name("stdlib", vocab_size))
    byte_dir = os.path.join(DATA_ROOT, "stdlib")
    if not os.path.isfile(os.path.join(byte_dir, "meta.json")):
        say(f"building {byte_dir} first (the BPE dataset re-tokenizes it) ...")
        build_stdlib(byte_dir, max_bytes or MAX_BYTES)
    train, val, meta = load_dataset(byte_dir)
    if max_bytes is not None and meta.get("max_bytes") != max_bytes:
        raise DataError(f"{byte_dir}, which the BPE dataset re-tokenizes, was built with --max_bytes="
                        f"{meta.get('max_bytes', 'unknown')}, not {max_bytes}; drop --max_bytes, or rebuild it "
                        f"first: data/prepare.py --max_bytes={max_bytes} --overwrite")
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
        say("building the default dataset (Python standard library source) ...")
        build_stdlib(data_dir)
        return True
    vocab_size = parse_bpe_name(name)
    if vocab_size is None:
        return False
    say(f"building {name} (Python standard library source, BPE vocabulary {vocab_size}) ...")
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
    try:
        return np.memmap(path, dtype=meta["dtype"], mode="r")
    except OSError as e:
        raise DataError(f"{path} cannot be read ({e.strerror}); check its permissions, or {REBUILD}") from None


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
        raise DataError(f"{out_dir} is a file, not a dataset directory; pick another --name or --out")
    if not os.path.isdir(os.path.dirname(out_dir)):
        raise DataError(f"cannot make {out_dir}: the folder {os.path.dirname(out_dir)} does not exist; "
                        f"create it first, or pick another --out")
    existing = [name for name in DATASET_FILES if os.path.exists(os.path.join(out_dir, name))]
    if existing and not overwrite:
        raise DataError(f"{out_dir} already holds a dataset ({', '.join(existing)}); pass --overwrite to replace it "
                        f"(runs trained on it will refuse --resume) or pick another --name (or --out)")


def say(line):
    """Print a line to stdout, now; characters stdout cannot encode (a file name's stray bytes) as escapes."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    print(line.encode(encoding, "backslashreplace").decode(encoding), flush=True)


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage + message; we keep to one line
        sys.exit(f"prepare.py: error: {message} (see --help)")


def parse_args(argv):
    """The command line -> (args, out_dir): paths made absolute (~ expanded; relative to the current
    directory), the flags checked against each other. A bad combination exits with one line."""
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", help="a UTF-8 text file (default: the Python standard library)")
    parser.add_argument("--name", help="dataset directory name under data/ (default: stdlib, or the file's stem)")
    parser.add_argument("--out", help="the dataset directory, anywhere (instead of --name); a relative path is "
                                      "taken from the current directory")
    parser.add_argument("--level", choices=("byte", "char"), default="byte", help="tokens: bytes or characters")
    parser.add_argument("--max_bytes", type=int, help=f"cap on the default corpus size (default {MAX_BYTES})")
    parser.add_argument("--vocab_size", type=int, default=256,
                        help="256: bytes; more: byte-level BPE with vocab_size - 256 merges (data/bpe.py)")
    parser.add_argument("--overwrite", action="store_true", help="replace the dataset if data/NAME already exists")
    args = parser.parse_args(argv)
    if args.input is None and args.level != "byte":
        parser.error("--level=char needs --input (the default corpus is byte-level)")
    if args.vocab_size != 256 and args.level != "byte":
        parser.error("--vocab_size is for byte-level BPE; it does not combine with --level=char")
    if args.vocab_size != 256 and not 257 <= args.vocab_size <= bpe.MAX_VOCAB:
        parser.error(f"--vocab_size must be 256 (bytes) or between 257 and {bpe.MAX_VOCAB}, got {args.vocab_size}")
    if args.max_bytes is not None and args.input is not None:
        parser.error("--max_bytes caps the default corpus; it does not apply to --input (shorten the file instead)")
    if args.max_bytes is not None and args.max_bytes < MIN_TOKENS:
        parser.error(f"--max_bytes must be at least {MIN_TOKENS}, got {args.max_bytes}")
    if args.input is not None:
        args.input = os.path.abspath(os.path.expanduser(args.input))
    return args, output_dir(args, parser)


def output_dir(args, parser):
    """--out as an absolute path, or data/NAME (NAME: --name, else stdlib or the input file's stem, + _bpeN)."""
    if args.out is not None:
        if args.name is not None:
            parser.error("give --name (a folder under data/) or --out (a path), not both")
        if not args.out.strip():
            parser.error("--out must be a directory path, got ''")
        return os.path.abspath(os.path.expanduser(args.out))
    name = args.name if args.name is not None else \
        ("stdlib" if args.input is None else os.path.splitext(os.path.basename(args.input))[0])
    if not name.strip() or name in (".", "..") or "/" in name or os.sep in name:
        parser.error(f"--name must be a plain directory name under data/ (like my_text), got {name!r}; "
                     f"to write elsewhere, give --out DIR")
    if args.vocab_size != 256 and args.name is None:
        name = bpe_name(name, args.vocab_size)
    return os.path.join(DATA_ROOT, name)


def build(args, out_dir):
    check_output(out_dir, args.overwrite)
    if args.vocab_size != 256:
        return (build_stdlib_bpe(args.vocab_size, out_dir, args.max_bytes) if args.input is None
                else build_file_bpe(args.input, out_dir, args.vocab_size))
    if args.input is None:
        return build_stdlib(out_dir, args.max_bytes or MAX_BYTES)
    return build_from_file(args.input, out_dir, args.level)


def main(argv=None):
    """The command line. Every outcome is one line and no traceback: bad input, a full disk, out of
    memory (exit 1), Ctrl-C (exit 130); a closed stdout (`prepare.py | head`) ends it quietly, as a
    broken pipe ends any Unix tool (exit 141 = 128 + SIGPIPE). In each case no temporary file is left
    and the files already there are unchanged (write_files_together)."""
    args, out_dir = parse_args(argv)
    meta = None
    try:
        meta = build(args, out_dir)
        say(f"wrote {out_dir}: {meta['train_tokens']:,} train and {meta['val_tokens']:,} val tokens, "
            f"vocab {meta['vocab_size']} ({meta['level']}-level) from {meta['source']}")
    except (DataError, bpe.BPEError) as e:
        sys.exit(f"prepare.py: error: {e}")
    except BrokenPipeError:
        raise  # quiet_on_broken_pipe's
    except OSError as e:  # not while writing the dataset (that is a DataError): reading, say
        sys.exit(f"prepare.py: error: {e.filename or out_dir}: {e.strerror or e}; check the path and its permissions")
    except MemoryError:
        sys.exit("prepare.py: error: out of memory; use a smaller --max_bytes or a shorter --input file")
    except KeyboardInterrupt:
        state = "was not written or changed" if meta is None else "was written before that, and is complete"
        print(f"prepare.py: interrupted (Ctrl-C); {out_dir} {state}", file=sys.stderr)
        sys.exit(130)


def quiet_on_broken_pipe(main):
    """Run main(); if the reader of stdout or stderr went away, exit 141 without a word."""
    try:
        main()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        for stream in (sys.stdout, sys.stderr):  # so Python's last flush at exit cannot fail again
            os.dup2(devnull, stream.fileno())
        sys.exit(141)


if __name__ == "__main__":
    quiet_on_broken_pipe(main)
