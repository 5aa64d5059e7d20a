"""
Files written whole or not at all. Every file a tool writes goes through here: to a temporary name in
the same directory, then renamed over the target (a rename within a directory is atomic on POSIX), so
a crash, Ctrl-C or a full disk never leaves half a file, and the temporary is removed if anything fails.

    atomic_write(path, write)     write(f) fills a binary file object
    write_json(path, obj)         JSON with nan/inf as null (JSON has no nan)
    save_npz(path, **arrays)      numpy arrays
    save_figure(figure, path)     a matplotlib figure, its format from the extension; the figure is closed
    json_safe(obj)                numpy scalars and arrays to plain numbers and lists, nan/inf to None
    check_figure_path(path, inputs)   before any work: a figure can be saved there, over no input file
"""
import json
import math
import os

import numpy as np

from support.cli import UsageError


def atomic_write(path, write):
    """Call write(f) on a temporary file beside `path`, then rename it to `path`. Raises OSError (a full
    disk, no permission); the temporary file is gone and `path` is as it was."""
    temporary = f"{path}.tmp{os.getpid()}"  # (support/rundir.py knows this name: a run's leftover temporaries)
    try:
        with open(temporary, "wb") as f:
            write(f)
        os.replace(temporary, path)
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


def write_json(path, obj, indent=1):
    """Write obj as JSON atomically, nan/inf as null."""
    atomic_write(path, lambda f: f.write(json.dumps(json_safe(obj), indent=indent).encode()))


def save_npz(path, **arrays):
    atomic_write(path, lambda f: np.savez(f, **arrays))


def save_figure(figure, path, dpi=120, **savefig_options):
    """Save a matplotlib figure atomically (format from the file's extension) and close it."""
    import matplotlib.pyplot as plt
    try:
        file_format = os.path.splitext(path)[1][1:].lower() or "png"
        atomic_write(path, lambda f: figure.savefig(f, dpi=dpi, format=file_format, **savefig_options))
    finally:
        plt.close(figure)


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
