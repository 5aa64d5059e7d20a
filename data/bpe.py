"""
A byte-level BPE tokenizer, in the minbpe tradition, readable top to bottom.

    tok = Tokenizer.train(text, vocab_size=2048)   # learn 2048 - 256 merges
    ids = tok.encode(text)                          # str -> list[int]
    text == tok.decode(ids)                         # list[int] -> str, exact for any text
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

Text is handled as UTF-8 bytes, so every string round-trips. Bytes that are not valid UTF-8
(a few standard-library files are Latin-1) travel as Python's "surrogateescape" characters and
come back as the same bytes: `decode_bytes(encode(raw.decode("utf-8", "surrogateescape"))) == raw`.
"""
import heapq
import os
import re
from collections import Counter, defaultdict

# GPT-2's pre-split pattern: 's 't 're 've 'm 'll 'd | ?letters | ?digits | ?other | spaces not before
# a non-space | spaces. \p{L} is written [^\W\d_] and \p{N} \d, since Python's re has no \p{..}.
SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""
SPLIT_RE = re.compile(SPLIT_PATTERN)
MERGES_FILE = "merges.txt"
FORMAT_LINE = "bend-bpe v1"   # the first line of merges.txt
MAX_VOCAB = 65536             # token ids are stored as uint16


class BPEError(Exception):
    """Bad input: reported to the user as one line, without a traceback."""


def to_bytes(piece):
    """A piece of text -> its UTF-8 bytes (surrogate-escaped characters back to the raw byte)."""
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
        """merges: list of pairs (a, b); merge k makes token 256 + k."""
        self.merges = [tuple(pair) for pair in merges]
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
        """Learn vocab_size - 256 merges from `text` (a str). progress: an optional callable(n_done)."""
        if not 257 <= vocab_size <= MAX_VOCAB:
            raise BPEError(f"vocab_size must be between 257 (256 bytes + 1 merge) and {MAX_VOCAB}, got {vocab_size}")
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
    def encode_piece(self, piece):
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
        """str -> list[int]."""
        ids = []
        for piece in SPLIT_RE.findall(text):
            ids.extend(self.encode_piece(piece))
        return ids

    def decode_bytes(self, ids):
        """list[int] -> the exact bytes they stand for."""
        try:
            return b"".join(self.vocab[i] for i in ids)
        except (IndexError, TypeError):
            bad = next(i for i in ids if not (isinstance(i, int) and 0 <= i < self.vocab_size))
            raise BPEError(f"token id {bad!r} is not in this vocabulary (0 .. {self.vocab_size - 1})") from None

    def decode(self, ids):
        """list[int] -> str. Ids that cut a character in half decode to U+FFFD (\"replace\")."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # -- the merges file ----------------------------------------------------------------------------
    def save(self, directory):
        """Write directory/merges.txt: a format line, then one merge "a b" per line (line k -> token 256 + k)."""
        path = os.path.join(directory, MERGES_FILE)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(FORMAT_LINE + "\n")
            f.writelines(f"{a} {b}\n" for a, b in self.merges)
        os.replace(tmp, path)  # atomic: a crash never leaves half a merges file
        return path

    @classmethod
    def load(cls, directory):
        """Read directory/merges.txt, checking every line."""
        path = os.path.join(directory, MERGES_FILE)
        if not os.path.isfile(path):
            raise BPEError(f"no {MERGES_FILE} in {directory!r}; build the dataset with data/prepare.py --vocab_size=N")
        with open(path) as f:
            lines = f.read().splitlines()
        if not lines or lines[0] != FORMAT_LINE:
            raise BPEError(f"{path} is not a merges file (its first line should be {FORMAT_LINE!r})")
        merges = []
        for number, line in enumerate(lines[1:], start=2):
            fields = line.split()
            new_id = 256 + len(merges)
            if len(fields) != 2 or not all(f.isdigit() and int(f) < new_id for f in fields):
                raise BPEError(f"{path} line {number}: expected two token ids below {new_id}, got {line!r}")
            merges.append((int(fields[0]), int(fields[1])))
        if not merges or 256 + len(merges) > MAX_VOCAB:
            raise BPEError(f"{path} holds {len(merges)} merges; expected 1 to {MAX_VOCAB - 256}")
        return cls(merges)
