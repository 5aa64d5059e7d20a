"""
Flags for a dataclass config, the way nanoGPT's configurator.py does it, with checks:

    python train.py config/tiny.py --n_layer=4 --resume

Every field of the dataclass is a flag `--key=value`, typed by the field (int, float, bool or str);
a bare `--flag` means `--flag=true` for a bool. A preset file (JSON, or a .py file of plain
`key = literal` lines, read with ast and never executed) sets flags first, then the flags on the
command line override it, wherever they stand: `--n_layer=3 config/tiny.py` trains 3 layers (presets
are read in their order, then the flags in theirs). -h / --help anywhere prints the flags. A bad key,
value or file is a UsageError: one line that says what is wrong and how to fix it (train.py prints it
and exits).
"""
import ast
import dataclasses
import difflib
import json
import os
import sys

from support.cli import UsageError


def _a(noun):
    """'a float', 'an int'."""
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


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
        raise UsageError(f"--{key} takes {_a(kind.__name__)}, got {text!r}")


def read_config_file(path):
    """A preset: a JSON object, or a .py file of plain `key = literal` lines (read, never executed)."""
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        if os.path.exists(path):
            raise UsageError(f"config file {path!r} is not a file; give a .py or .json preset")
        if path.startswith("-"):  # -n_layer=3, or a flag of another tool
            raise UsageError(f"{path!r} is neither a flag nor a config file; flags take two dashes: -{path}")
        hint = next((f"; did you mean {path + ext}?" for ext in (".py", ".json") if os.path.isfile(path + ext)), "")
        raise UsageError(f"config file {path!r} does not exist{hint}")
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
        raise UsageError(f"--{key} takes {_a(kind.__name__)}, got {value!r}")
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
    if any(arg in ("-h", "--help") for arg in argv):
        print(help_text(config, usage))
        sys.exit(0)
    given, settings = set(), []
    for arg in argv:  # every flag's syntax first: `--n_layer 3` must not read "3" as a preset file
        if arg.startswith("--"):
            key, has_value, value = arg[2:].partition("=")
            if not has_value:
                if kinds.get(key) is not bool:
                    raise UsageError(f"--{key} needs a value: --{key}=VALUE" if key in kinds
                                     else f"unknown flag --{key}")
                value = "true"  # a bare --resume means --resume=true
            settings.append((key, value))
    for path in (arg for arg in argv if not arg.startswith("--")):  # the presets, in their order
        for key, value in read_config_file(path).items():
            try:
                apply_setting(config, key, value, kinds)
            except UsageError as e:
                raise UsageError(f"config file {path!r}: {e}") from None
            given.add(key)
    for key, value in settings:  # then the command line's flags: they win wherever they stand
        apply_setting(config, key, value, kinds)
        given.add(key)
    return config, given
