"""
A byte-level BPE tokenizer, in the minbpe tradition, readable top to bottom.

    tok = Tokenizer.train(text, vocab_size=2048)   # learn 2048 - 256 merges
    ids = tok.encode(text)                          # str -> list[int]
    text == tok.decode(ids)                         # list[int] -> str, exact (see "Round trip" below)
    tok.save(dataset_dir); Tokenizer.load(dataset_dir)   # merges.txt, beside the token arrays

Byte-pair encoding starts from the 256 byte values and repeatedly merges the most frequent
adjacent pair of tokens into a new token: merge k makes token 256 + k. Three steps:

1. Pre-split. The text is cut into pieces by a regular expression (GPT-2's, with Python's `re`
   classes: a letter is [^\\W\\d_], a number \\d): optional space + letters, optional space + digits,
   optional space + other symbols, whitespace runs. Merges never cross a piece boundary, so a token
   is never half a word and half the next one. "    return x" -> "   ", " return", " x".
2. Train. Only the *distinct* pieces and their counts matter: the count of a pair is
   Σ over distinct pieces of (piece count × occurrences of the pair in the piece). Python source
   of 14.5 MB has ~4 M pieces but only ~100 k distinct ones. After each merge only the pieces that
   contain the merged pair change, so the pair counts are updated for those pieces alone (an index
   pair -> pieces holding it), and a heap finds the most frequent pair. Ties go to the smallest
   pair (a, b), so training is deterministic.
3. Encode. Each piece is encoded on its own, by applying the learned merges in the order they
   were learned (the lowest-ranked pair present first), and cached: a piece seen before costs
   one dictionary look-up.

Round trip. Text is handled as UTF-8 bytes, so `decode(encode(text)) == text` for every str of
Unicode characters, i.e. every str without surrogate code points (U+D800..U+DFFF, which are not
characters and have no UTF-8 bytes). Two kinds of str hold surrogates:
  - bytes that are not valid UTF-8 (a few standard-library files are Latin-1), read with Python's
    "surrogateescape" (each bad byte 0xXY becomes U+DCXY, 0x80 <= 0xXY <= 0xFF). They come back
    as the same bytes: `decode_bytes(encode(raw.decode("utf-8", "surrogateescape"))) == raw`
    (decode, which makes printable text, shows each such byte as U+FFFD). Any U+DC80..U+DCFF is
    taken for such a byte, so only decode_bytes gives it back;
  - any other surrogate (U+D800..U+DC7F, U+DD00..U+DFFF: half of a UTF-16 pair, e.g. from
    a JSON "\\ud83d" escape): encode and train refuse it with a BPEError.

Bad input -- a text that is not a str, a vocab_size that is not an integer in range, a token id
that is not in the vocabulary (negative, too large, a float, a bool, a nested list ...), a
damaged merges file, a directory that cannot be written -- is a BPEError whose message is one
line that names the problem and what to do. The checks are the small functions at the end of
this file, so the algorithm above them reads without them.
"""
import heapq
import operator
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable

# GPT-2's pre-split pattern: 's 't 're 've 'm 'll 'd | ?letters | ?digits | ?other | spaces not before
# a non-space | spaces. \p{L} is written [^\W\d_] and \p{N} \d, since Python's re has no \p{..}.
SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""
SPLIT_RE = re.compile(SPLIT_PATTERN)
MERGES_FILE = "merges.txt"
FORMAT_LINE = "bend-bpe v1"   # the first line of merges.txt
MAX_VOCAB = 65536             # token ids are stored as uint16
REBUILD = "rebuild the dataset with data/prepare.py --overwrite, or save the tokenizer again"


class BPEError(Exception):
    """Bad input: reported to the user as one line, without a traceback."""


def to_bytes(piece):
    """A piece of text -> its UTF-8 bytes (surrogate-escaped characters back to the raw byte).
    Raises UnicodeEncodeError on any other surrogate: encode and train check the text first."""
    return piece.encode("utf-8", "surrogateescape")


def pairs_in(ids):
    """Adjacent pairs of a token list: [1, 2, 3] -> [(1, 2), (2, 3)]."""
    return list(zip(ids, ids[1:]))


def merge(ids, pair, new_id):
    """Replace every non-overlapping occurrence of `pair` in `ids` (left to right) by `new_id`."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class Tokenizer:
    def __init__(self, merges):
        """merges: list of pairs (a, b) of token ids; merge k makes token 256 + k, so a, b < 256 + k.
        Raises BPEError for anything else."""
        self.merges = check_merges(merges, where=lambda k: f"merges[{k}]",
                                   fix="give merges as Tokenizer.train makes them")
        self.rank = {pair: k for k, pair in enumerate(self.merges)}   # pair -> the order it was learned in
        self.vocab = [bytes([b]) for b in range(256)]                  # token id -> its bytes
        for a, b in self.merges:
            self.vocab.append(self.vocab[a] + self.vocab[b])
        self.cache = {}                                                # piece -> its token ids

    @property
    def vocab_size(self):
        return 256 + len(self.merges)

    # -- training ------------------------------------------------------------------------------
    @classmethod
    def train(cls, text, vocab_size, progress=None):
        """Learn vocab_size - 256 merges from `text` (a str). progress: an optional callable(n_done).
        Raises BPEError for a text that is not a str or holds a lone surrogate, a vocab_size that is not an
        integer in 257 .. 65536, or a text too short to hold that many merges."""
        check_text(text, "Tokenizer.train")
        vocab_size = check_vocab_size(vocab_size)
        check_progress(progress)
        n_merges = vocab_size - 256
        piece_counts = Counter(SPLIT_RE.findall(text))
        words = [list(to_bytes(piece)) for piece in piece_counts]   # the distinct pieces, as token lists
        counts = list(piece_counts.values())                        # how often each occurs

        pair_count = Counter()           # pair -> Σ count of the pieces it occurs in (with multiplicity)
        holders = defaultdict(set)       # pair -> indices of the pieces that hold it (may be stale)
        for w, ids in enumerate(words):
            for pair in pairs_in(ids):
                pair_count[pair] += counts[w]
                holders[pair].add(w)
        heap = [(-n, pair) for pair, n in pair_count.items()]  # most frequent first, ties: smallest pair
        heapq.heapify(heap)

        merges = []
        while len(merges) < n_merges:
            # pop until the top entry is current (counts change; old entries stay in the heap)
            while heap and -heap[0][0] != pair_count.get(heap[0][1], 0):
                heapq.heappop(heap)
            if not heap or -heap[0][0] < 2:
                raise BPEError(f"too little text to learn {n_merges} merges: no pair of tokens occurs twice "
                               f"after {len(merges)} merges; use more text or a smaller vocab_size")
            _, pair = heapq.heappop(heap)
            new_id = 256 + len(merges)
            merges.append(pair)
            changed = set()
            for w in holders.pop(pair):
                old = words[w]
                new = merge(old, pair, new_id)
                if len(new) == len(old):
                    continue  # a stale holder: the pair was merged away by an earlier merge
                for p in pairs_in(old):      # take the piece's old pairs out of the counts ...
                    pair_count[p] -= counts[w]
                    changed.add(p)
                for p in pairs_in(new):      # ... and put its new pairs in
                    pair_count[p] += counts[w]
                    holders[p].add(w)
                    changed.add(p)
                words[w] = new
            for p in changed:
                if pair_count[p] > 0:
                    heapq.heappush(heap, (-pair_count[p], p))
                else:
                    del pair_count[p]
            if progress is not None:
                progress(len(merges))
        return cls(merges)

    # -- encoding and decoding ---------------------------------------------------------------------
    def _encode_piece(self, piece):
        """One pre-split piece -> token ids: apply the merges in the order they were learned."""
        ids = self.cache.get(piece)
        if ids is None:
            ids = list(to_bytes(piece))
            while len(ids) >= 2:
                pair = min(pairs_in(ids), key=lambda p: self.rank.get(p, float("inf")))
                if pair not in self.rank:
                    break  # no learned merge applies any more
                ids = merge(ids, pair, 256 + self.rank[pair])
            self.cache[piece] = ids
        return ids

    def encode(self, text):
        """str -> list[int], token ids in 0 .. vocab_size - 1. Raises BPEError for a text that is not a
        str or holds a lone surrogate (see "Round trip" above)."""
        check_text(text, "encode")
        ids = []
        for piece in SPLIT_RE.findall(text):
            ids.extend(self._encode_piece(piece))
        return ids

    def decode_bytes(self, ids):
        """Token ids -> the exact bytes they stand for. ids: a list or tuple of ints, or a 1-d numpy
        array or torch tensor of integers. Raises BPEError for any id not in 0 .. vocab_size - 1."""
        ids = check_token_ids(ids, self.vocab_size)
        return b"".join(self.vocab[i] for i in ids)

    def decode(self, ids):
        """Token ids -> str. Ids that cut a character in half decode to U+FFFD (\"replace\")."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # -- the merges file ----------------------------------------------------------------------------
    def merges_text(self):
        """The merges file's text: a format line, then one merge "a b" per line (line k -> token 256 + k)."""
        return FORMAT_LINE + "\n" + "".join(f"{a} {b}\n" for a, b in self.merges)

    def save(self, directory):
        """Write directory/merges.txt (atomically: a failure never leaves half a file, nor a temporary
        one). Returns its path. Raises BPEError if directory is not one or the file cannot be written."""
        path = os.path.join(check_directory(directory, fix="create it first"), MERGES_FILE)
        write_atomically(path, self.merges_text())
        return path

    @classmethod
    def load(cls, directory):
        """Read directory/merges.txt, checking every line. Raises BPEError for a missing, unreadable or
        damaged file, naming the line."""
        path = os.path.join(check_directory(directory, fix="give the dataset directory"), MERGES_FILE)
        lines = read_merges_file(path)
        merges = []
        for number, line in enumerate(lines[1:], start=2):
            if not re.fullmatch(r"[0-9]+ [0-9]+", line):
                raise BPEError(f"{path} line {number}: expected two token ids \"a b\", got {shown(line)}; {REBUILD}")
            merges.append(tuple(int(field) for field in line.split()))
        if not merges:
            raise BPEError(f"{path} holds 0 merges; expected 1 to {MAX_VOCAB - 256}; {REBUILD}")
        return cls(check_merges(merges, where=lambda k: f"{path} line {k + 2}", fix=REBUILD))


# ---------------------------------------------------------------------------------------------
# Checks of the input: each turns one kind of bad input into a one-line BPEError that says what to do.

def shown(value, limit=60):
    """A value as it appears in an error message: its repr, on one line, at most `limit` characters."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


LONE_SURROGATE = re.compile(r"[\ud800-\udc7f\udd00-\udfff]")  # surrogates other than escaped bytes U+DC80..U+DCFF


def check_text(text, caller):
    """A str without lone surrogates (see "Round trip" above), or BPEError."""
    if not isinstance(text, str):
        fix = ("decode the bytes first: raw.decode('utf-8', 'surrogateescape')" if isinstance(text, (bytes, bytearray))
               else "pass the text as a str")
        raise BPEError(f"{caller} takes a str, got {type(text).__name__} {shown(text)}; {fix}")
    bad = LONE_SURROGATE.search(text)
    if bad:
        raise BPEError(f"{caller}: the text holds a lone surrogate U+{ord(bad.group()):04X} at index {bad.start()}, "
                       f"which is not a character and has no UTF-8 bytes; replace it, e.g. "
                       f"text.encode('utf-8', 'replace').decode('utf-8')")


def check_vocab_size(vocab_size):
    """vocab_size as an int in 257 .. MAX_VOCAB, or BPEError. numpy integers count as integers; floats,
    strings and bools do not (a float 300.5 would otherwise learn 45 merges)."""
    try:
        size = operator.index(vocab_size)  # an int, numpy integer or integer tensor; not 300.0
    except TypeError:
        size = None
    if size is None or isinstance(vocab_size, bool):
        raise BPEError(f"vocab_size must be an integer, got {type(vocab_size).__name__} {shown(vocab_size)}; "
                       f"pass e.g. vocab_size=2048")
    if not 257 <= size <= MAX_VOCAB:
        raise BPEError(f"vocab_size must be between 257 (256 bytes + 1 merge) and {MAX_VOCAB}, got {size}")
    return size


def check_progress(progress):
    if progress is not None and not callable(progress):
        raise BPEError(f"progress must be None or a function of the number of merges done, got {shown(progress)}")


def check_merges(merges, where, fix):
    """merges as a list of (a, b) int pairs that a trainer could have made, or BPEError naming where(k):
    merge k makes token 256 + k, so it may only join tokens below 256 + k, and no pair is merged twice."""
    if isinstance(merges, (str, bytes)) or not isinstance(merges, Iterable):
        raise BPEError(f"merges must be a list of pairs (a, b) of token ids, got {type(merges).__name__}; {fix}")
    pairs, seen = [], {}
    for k, pair in enumerate(merges):
        ok = isinstance(pair, (tuple, list)) and len(pair) == 2 and all(type(i) is int for i in pair)
        if not (ok and 0 <= min(pair) and max(pair) < 256 + k):
            raise BPEError(f"{where(k)}: expected two token ids below {256 + k} (merge {k} makes token "
                           f"{256 + k}), got {shown(pair)}; {fix}")
        if tuple(pair) in seen:
            raise BPEError(f"{where(k)}: the pair {tuple(pair)} is merged twice (first into token "
                           f"{256 + seen[tuple(pair)]}); {fix}")
        seen[tuple(pair)] = k
        pairs.append(tuple(pair))
    if 256 + len(pairs) > MAX_VOCAB:
        raise BPEError(f"{len(pairs)} merges make a vocabulary above {MAX_VOCAB}; {fix}")
    return pairs


def check_token_ids(ids, vocab_size):
    """ids -> a list of Python ints, each in 0 .. vocab_size - 1, or BPEError. Accepted: a list, tuple or
    range of ints (numpy integers and 0-d integer tensors too), a 1-d numpy array or torch tensor of an
    integer type. Refused, with the position of the first bad id: negative ids (they would silently index
    the vocabulary from its end), ids >= vocab_size, floats, bools, nested lists, 2-d arrays."""
    if hasattr(ids, "tolist"):  # a numpy array or torch tensor: its elements become Python numbers
        ids = ids.tolist()
    if isinstance(ids, (str, bytes, bytearray, dict, set, frozenset)) or not isinstance(ids, Iterable):
        raise BPEError(f"decode takes a sequence of token ids (a list, numpy array or tensor of integers), "
                       f"got {type(ids).__name__} {shown(ids)}")
    ids = ids if type(ids) is list else list(ids)
    if set(map(type, ids)) <= {int} and (not ids or 0 <= min(ids) and max(ids) < vocab_size):
        return ids  # the common case, checked at C speed
    ids = [i.tolist() if hasattr(i, "tolist") else i for i in ids]  # numpy scalars, 0-d tensors
    for k, i in enumerate(ids):
        if isinstance(i, (list, tuple)):
            raise BPEError(f"the token id at position {k} is a sequence {shown(i)}, not a token id: "
                           f"decode a flat list (a 2-d array one row at a time)")
        if type(i) is not int or not 0 <= i < vocab_size:
            raise BPEError(f"token id {shown(i)} at position {k} is not in this vocabulary: ids are integers "
                           f"0 .. {vocab_size - 1}; decode ids that this tokenizer made")
    return ids  # a list of numpy integers or 0-d tensors


def check_directory(directory, fix):
    """A path (str or os.PathLike) to an existing directory, or BPEError."""
    if not isinstance(directory, (str, os.PathLike)):
        raise BPEError(f"expected a directory path, got {type(directory).__name__} {shown(directory)}; {fix}")
    if not os.path.isdir(directory):
        raise BPEError(f"{shown(os.fspath(directory))} is not a directory; {fix}")
    return directory


def read_merges_file(path):
    """The lines of a merges file whose first line is FORMAT_LINE, or BPEError."""
    if not os.path.isfile(path):
        raise BPEError(f"no {MERGES_FILE} in {os.path.dirname(path)!r}; build the dataset with "
                       f"data/prepare.py --vocab_size=N")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise BPEError(f"{path} cannot be read ({e.strerror}); check its permissions") from None
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise BPEError(f"{path} is damaged (not UTF-8 text: byte {raw[e.start]:#04x} at offset {e.start}); "
                       f"{REBUILD}") from None
    if not lines or lines[0] != FORMAT_LINE:
        raise BPEError(f"{path} is not a merges file (its first line should be {FORMAT_LINE!r}); {REBUILD}")
    if not raw.endswith(b"\n"):  # "12 345" cut to "12 3" would still read as a merge
        raise BPEError(f"{path} ends mid-line (was it cut short?); {REBUILD}")
    return lines


def write_atomically(path, text):
    """Write text to path through path.tmpPID and a rename: a failure (full disk, Ctrl-C) leaves the old
    file as it was and no temporary file; an OSError becomes a BPEError naming the file."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, OSError):
            raise BPEError(f"cannot write {path} ({e.strerror}); free some space or check the directory's "
                           f"permissions") from None
        raise
