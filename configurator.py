"""
Flags for a dataclass config, the way nanoGPT's configurator.py does it, with checks:

    python train.py config/tiny.py --n_layer=4 --resume

Every field of the dataclass is a flag `--key=value`, typed by the field (int, float, bool or str);
a bare `--flag` means `--flag=true` for a bool. A preset file (JSON, or a .py file of plain
`key = literal` lines, read with ast and never executed) sets flags first, then the flags on the
command line override it. A bad key, value or file is a UsageError: one line that says what is
wrong and how to fix it (train.py prints it and exits).
"""
import ast
import dataclasses
import difflib
import json
import os
import sys

from support.cli import UsageError


def parse_value(key, text, kind):
    """'3e-3' -> 0.003 for a float key, 'true' -> True for a bool key, and so on."""
    if kind is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise UsageError(f"--{key} takes true or false, got {text!r}")
    try:
        return kind(text)
    except ValueError:
        raise UsageError(f"--{key} takes a {kind.__name__}, got {text!r}")


def read_config_file(path):
    """A preset: a JSON object, or a .py file of plain `key = literal` lines (read, never executed)."""
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise UsageError(f"config file {path!r} does not exist" if not os.path.exists(path) else
                          f"config file {path!r} is not a file; give a .py or .json preset")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise UsageError(f"config file {path!r} is not UTF-8 text (bad byte at offset {e.start}); save it as UTF-8")
    except OSError as e:
        raise UsageError(f"config file {path!r} cannot be read ({e.strerror}); check its permissions")
    if path.endswith(".json"):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as e:
            raise UsageError(f"config file {path!r} is not valid JSON ({e.msg}, line {e.lineno})")
        if not isinstance(values, dict):
            raise UsageError(f"config file {path!r} must hold a JSON object of flags")
        return values
    try:
        tree = ast.parse(text, path)
    except SyntaxError as e:
        raise UsageError(f"config file {path!r} line {e.lineno}: not valid Python")
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise UsageError(f"config file {path!r} line {node.lineno}: only `key = value` lines are allowed")
        try:
            values[node.targets[0].id] = ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise UsageError(f"config file {path!r} line {node.lineno}: the value must be a literal "
                              f"(a number, a string, true/false)")
    return values


def apply_setting(config, key, value, kinds):
    """Set one flag, checking the key exists and the value has the key's type."""
    if key not in kinds:
        close = difflib.get_close_matches(key, kinds, n=1)
        hint = f" (did you mean --{close[0]}?)" if close else " (see --help)"
        raise UsageError(f"unknown flag --{key}{hint}")
    kind = kinds[key]
    if isinstance(value, str) and kind is not str:
        value = parse_value(key, value, kind)
    elif kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UsageError(f"--{key} takes a {kind.__name__}, got {value!r}")
    setattr(config, key, value)


def help_text(config, usage):
    lines = [usage, "", "flags (default):"]
    for field in dataclasses.fields(config):
        lines.append(f"  --{field.name}={field.default}")
    return "\n".join(lines)


def parse_flags(argv, config, usage):
    """Set the fields of `config` (a dataclass with defaults) from argv.
    Returns (config, the set of keys the user gave explicitly). -h / --help prints the flags and exits."""
    kinds = {field.name: field.type for field in dataclasses.fields(config)}  # int, float, bool or str
    given = set()
    for arg in argv:
        if arg in ("-h", "--help"):
            print(help_text(config, usage))
            sys.exit(0)
        if not arg.startswith("--"):
            for key, value in read_config_file(arg).items():
                apply_setting(config, key, value, kinds)
                given.add(key)
            continue
        key, has_value, value = arg[2:].partition("=")
        if not has_value:
            if kinds.get(key) is not bool:
                raise UsageError(f"--{key} needs a value: --{key}=VALUE" if key in kinds else f"unknown flag --{key}")
            value = "true"  # a bare --resume means --resume=true
        apply_setting(config, key, value, kinds)
        given.add(key)
    return config, given
