"""
Files written whole or not at all. Every file a tool writes goes through here: to a temporary name in
the same directory, then renamed over the target (a rename within a directory is atomic on POSIX), so
a crash, Ctrl-C or a full disk never leaves half a file, and the temporary is removed if anything fails.

    atomic_write(path, write)     write(f) fills a binary file object
    write_json(path, obj)         JSON with nan/inf as null (JSON has no nan)
    save_npz(path, **arrays)      numpy arrays
    save_figure(figure, path)     a matplotlib figure, its format from the extension; the figure is closed
    write_figure(path, draw)      draw(file_path) saves a figure there (for plot functions that take a path)
    render_figure(path, draw)     the same figure's bytes, not yet written (for write_together)
    write_together(files)         [(path, bytes)]: every file written in full before any is renamed into place,
                                  so results that belong together (a JSON and its figure) are never mixed
    json_safe(obj)                numpy scalars and arrays to plain numbers and lists, nan/inf to None
    is_our_figure(path)           a PNG these functions wrote under that very name (its tag, below)
    check_figure_path(path, inputs)   before any work: a figure can be saved there, over no input file

A failed write is an OSError that names the file (a full disk inside a library such as torch.save
surfaces as the OSError the disk gave, not as the library's own error). A path that exists and is not
a regular file (a directory, /dev/null, a pipe) is refused: renaming over it would replace it.

Every PNG is tagged: a tEXt chunk "bend-figure" holding the file's name. So a run directory's figures
are known by their content, and a user's own zslide.png (no tag), or a copy of ours renamed, is not
one of them (support/rundir.py).
"""
import csv
import errno
import io
import json
import math
import os
import struct
import zlib

import numpy as np

from support.cli import UsageError

FIGURE_TAG = b"bend-figure"   # the PNG tEXt keyword of our figures; its text is the file's name


class _Recording:
    """A file object that remembers the OSError of a failed write (torch.save turns it into a
    RuntimeError of its own, which would hide the full disk). Everything else is the file's."""

    def __init__(self, f):
        self._f, self.error = f, None

    def write(self, data):
        try:
            return self._f.write(data)
        except OSError as error:
            self.error = error
            raise

    def __getattr__(self, name):
        return getattr(self._f, name)


def atomic_write(path, write):
    """Call write(f) on a temporary file beside `path`, then rename it to `path`. Raises OSError (a full
    disk, no permission, `path` not a regular file), naming the file; the temporary file is gone and
    `path` is as it was."""
    if os.path.lexists(path) and not os.path.isfile(path):  # as root, a rename would replace even /dev/null
        kind = "a directory" if os.path.isdir(path) else "a device, pipe or broken link"
        raise OSError(errno.EINVAL, f"not a regular file ({kind}), so it cannot be written as one", path)
    temporary = f"{path}.tmp{os.getpid()}"  # (support/rundir.py knows this name: a run's leftover temporaries)
    try:
        with open(temporary, "wb") as f:
            recording = _Recording(f)
            try:
                write(recording)
            except Exception:
                if recording.error is not None:
                    raise recording.error from None
                raise
        os.replace(temporary, path)
    except OSError as error:
        if error.filename is None or error.filename == temporary:
            error.filename = path  # the file the user knows, not our temporary (f.write's has no name at all)
        raise
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def json_safe(obj):
    """obj with numpy scalars/arrays as plain numbers/lists and nan/inf as None, so it is valid JSON."""
    if isinstance(obj, np.ndarray):
        obj = obj.tolist()
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: json_safe(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(value) for value in obj]
    return obj


def json_bytes(obj, indent=1):
    """obj as JSON text (UTF-8), nan/inf as null."""
    return json.dumps(json_safe(obj), indent=indent).encode()


def write_json(path, obj, indent=1):
    """Write obj as JSON atomically, nan/inf as null."""
    atomic_write(path, lambda f: f.write(json_bytes(obj, indent)))


def write_together(files):
    """files: [(path, bytes)]. Each is written in full to its temporary first; only when all are written
    are they renamed into place (a rename needs no space), so a full disk leaves every file as it was.
    Raises OSError naming the file that failed."""
    staged = []
    try:
        for path, data in files:
            if os.path.lexists(path) and not os.path.isfile(path):
                raise OSError(errno.EINVAL, "not a regular file, so it cannot be written as one", path)
            temporary = f"{path}.tmp{os.getpid()}"
            staged.append(temporary)
            try:
                with open(temporary, "wb") as f:
                    f.write(data)
            except OSError as error:
                error.filename = path
                raise
        for temporary, (path, _) in zip(staged, files):
            os.replace(temporary, path)
    finally:
        for temporary in staged:
            if os.path.exists(temporary):
                os.remove(temporary)


def write_csv(path, columns, rows):
    """A CSV file: a header row of column names, then the rows; written whole, atomically."""
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([columns] + list(rows))
    atomic_write(path, lambda f: f.write(text.getvalue().encode()))


def save_npz(path, **arrays):
    atomic_write(path, lambda f: np.savez(f, **arrays))


# ----------------------------------------------------------------------------------------------
# Figures: written whole, PNGs tagged with their name

def tag_png(data, name):
    """PNG bytes with one tEXt chunk FIGURE_TAG = name right after the header chunk (IHDR). A chunk is
    length (4 bytes, big-endian), type, data, and the CRC-32 of type + data (the PNG specification)."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return data
    header_end = 8 + 8 + struct.unpack(">I", data[8:12])[0] + 4   # signature, then IHDR
    position = header_end   # drop an earlier tag (a figure drawn to a temporary name, then renamed)
    while position + 8 <= len(data) and data[position + 4:position + 8] != b"IDAT":
        length = struct.unpack(">I", data[position:position + 4])[0]
        if data[position + 4:position + 8] == b"tEXt" and data[position + 8:].startswith(FIGURE_TAG + b"\0"):
            data = data[:position] + data[position + 12 + length:]
        else:
            position += 12 + length
    body = b"tEXt" + FIGURE_TAG + b"\0" + name.encode("latin-1", "replace")
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
    return data[:header_end] + chunk + data[header_end:]


def png_tag(path, limit=1 << 16):
    """The FIGURE_TAG text of the PNG at path, or None (not a PNG, untagged, unreadable)."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit)
    except OSError:
        return None
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    position = 8
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I", data[position:position + 4])[0], data[position + 4:position + 8]
        if kind == b"tEXt":
            keyword, _, text = data[position + 8:position + 8 + length].partition(b"\0")
            if keyword == FIGURE_TAG:
                return text.decode("latin-1")
        if kind == b"IDAT":
            return None  # the text chunks we write come before the image data
        position += 12 + length
    return None


def is_our_figure(path):
    """True for a PNG written by save_figure / write_figure under this very name."""
    return png_tag(path) == os.path.basename(path)


def _write_tagged(path, data):
    atomic_write(path, lambda f: f.write(tag_png(data, os.path.basename(path))))


def save_figure(figure, path, dpi=120, **savefig_options):
    """Save a matplotlib figure atomically (format from the file's extension; a PNG is tagged with its
    name) and close it. savefig_options go to matplotlib's savefig (e.g. bbox_inches="tight")."""
    import matplotlib.pyplot as plt
    try:
        file_format = os.path.splitext(path)[1][1:].lower() or "png"
        buffer = io.BytesIO()
        figure.savefig(buffer, dpi=dpi, format=file_format, **savefig_options)
        _write_tagged(path, buffer.getvalue())
    finally:
        plt.close(figure)


def write_figure(path, draw):
    """draw(file_path) saves a figure to file_path (a temporary beside `path`, of the same extension);
    it is then tagged and renamed to `path`. For plot functions that take a path and save themselves."""
    _write_tagged(path, render_figure(path, draw, tag=False))


def render_figure(path, draw, tag=True):
    """The bytes draw(file_path) saves for the figure that will be `path` (tagged with its name, a PNG),
    drawn into a temporary beside it of the same extension, which is then removed."""
    stem, extension = os.path.splitext(path)
    temporary = f"{stem}.tmp{os.getpid()}{extension}"
    try:
        draw(temporary)
        with open(temporary, "rb") as f:
            data = f.read()
    except OSError as error:
        if error.filename in (None, temporary):
            error.filename = path
        raise
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return tag_png(data, os.path.basename(path)) if tag else data


def check_figure_path(path, inputs=()):
    """Raise UsageError unless a figure can be saved at path without touching an input file."""
    from matplotlib.backend_bases import FigureCanvasBase
    formats = FigureCanvasBase.get_supported_filetypes()
    extension = os.path.splitext(path)[1][1:].lower()
    if extension not in formats:
        raise UsageError(f"--plot={path!r}: name the figure file with a known extension "
                         f"(e.g. fits.png; known: {', '.join(sorted(formats))})")
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) or not os.path.isdir(parent):
        raise UsageError(f"--plot={path}: {'a directory' if os.path.isdir(path) else 'no directory ' + parent}; "
                         "give a file name in an existing directory")
    for given in inputs:
        given = os.path.join(given, "log.csv") if os.path.isdir(given) else given
        if os.path.exists(path) and os.path.exists(given) and os.path.samefile(path, given):
            raise UsageError(f"--plot={path} is an input curve; choose another file name")
