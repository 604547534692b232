"""Which of Keras 3's public names convnet has, namespace by namespace.

Keras' names are read once from an installed Keras and committed as
``scripts/keras_api.json``, so the table (and its test) needs no Keras. convnet's side
is read from the code each time: a name counts when ``convnet.<namespace>`` has a public
attribute of that name (a module only where it is one of convnet's own).

    python scripts/api_table.py                 # print the summary table
    python scripts/api_table.py --write         # rewrite README.md's table and docs/keras-api.md
    python scripts/api_table.py --check         # exit 1 if either is out of date
    python scripts/api_table.py --refresh-keras # re-read Keras' names (needs keras installed)
"""
import argparse
import json
import os
import subprocess
import sys
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERAS_NAMES = os.path.join(ROOT, "scripts", "keras_api.json")
README = os.path.join(ROOT, "README.md")
FULL_TABLE = os.path.join(ROOT, "docs", "keras-api.md")
START = "<!-- --8<-- [start:keras-api] -->"
END = "<!-- --8<-- [end:keras-api] -->"

# Keras' namespaces, in the order the tables list them. "" is ``keras`` itself (its classes
# and functions; its namespaces have rows of their own). keras.ops.nn and keras.ops.numpy
# are left out: every name in them is also in keras.ops.
NAMESPACES = ["", "layers", "models", "ops", "ops.image", "ops.linalg", "optimizers",
              "optimizers.schedules", "losses", "metrics", "callbacks", "initializers",
              "regularizers", "constraints", "activations", "datasets", "utils", "backend",
              "config", "random"]

_READ_KERAS = r"""
import json, types
import keras
namespaces = json.loads(input())
out = {"keras_version": keras.__version__, "namespaces": {}}
for ns in namespaces:
    module = keras
    for part in filter(None, ns.split(".")):
        module = getattr(module, part)
    names = []
    for name in dir(module):
        if name.startswith("_"):
            continue
        is_module = isinstance(getattr(module, name), types.ModuleType)
        # Namespaces are rows of their own, except datasets, whose names are modules.
        if is_module != (ns == "datasets"):
            continue
        names.append(name)
    out["namespaces"][ns] = sorted(names)
print(json.dumps(out, indent=1))
"""


def refresh_keras_names():
    """Read Keras' public names in a subprocess (Keras on its torch backend) and store them."""
    env = dict(os.environ, KERAS_BACKEND=os.environ.get("KERAS_BACKEND", "torch"))
    result = subprocess.run([sys.executable, "-c", _READ_KERAS], input=json.dumps(NAMESPACES),
                            capture_output=True, text=True, env=env, check=True)
    with open(KERAS_NAMES, "w", encoding="utf-8") as f:
        f.write(result.stdout)


def keras_names():
    with open(KERAS_NAMES, encoding="utf-8") as f:
        return json.load(f)


def _convnet_namespace(ns):
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    import convnet
    module = convnet
    for part in filter(None, ns.split(".")):
        module = getattr(module, part, None)
        if module is None:
            return None
    return module


def has(module, name):
    """Whether convnet's namespace `module` offers `name` (a module only if convnet's own)."""
    if module is None or name.startswith("_") or not hasattr(module, name):
        return False
    value = getattr(module, name)
    return (not isinstance(value, types.ModuleType)
            or value.__name__.startswith("convnet."))


def coverage():
    """[(namespace, Keras' names, the names convnet has, the names it lacks)]."""
    names = keras_names()["namespaces"]
    rows = []
    for ns in NAMESPACES:
        module = _convnet_namespace(ns)
        present = [n for n in names[ns] if has(module, n)]
        missing = [n for n in names[ns] if not has(module, n)]
        rows.append((ns, names[ns], present, missing))
    return rows


def _label(ns):
    return f"`keras.{ns}`" if ns else "`keras`"


# A row lists the names convnet has; where it has all but a few, it lists those few instead.
ALL_BUT_AT_MOST = 12
# Past this many, the names convnet lacks are counted (docs/keras-api.md lists them all).
LACKS_LISTED_UP_TO = 12


# After a layer that convnet cannot yet write in Keras' .keras format (only in its own .cnet).
NOT_IN_KERAS_FORMAT = "†"


def _names(names, marked=()):
    return ", ".join(f"`{n}`" + (NOT_IN_KERAS_FORMAT if n in marked else "") for n in names)


def not_in_keras_format(names):
    """The layer classes among convnet.layers' `names` that Keras' file format does not cover
    (convnet.keras_format's registry, by class name; the base Layer is a user's own)."""
    layers = _convnet_namespace("layers")
    from convnet.keras_format import registry
    out = set()
    for name in names:
        value = getattr(layers, name)
        if (isinstance(value, type) and issubclass(value, layers.Layer)
                and value is not layers.Layer and registry.format_named(value.__name__) is None):
            out.add(name)
    return out


def summary_table(rows=None):
    """The README's table: per namespace, the names convnet has and the ones it lacks."""
    rows = coverage() if rows is None else rows
    version = keras_names()["keras_version"]
    lines = [f"| Keras {version} | convnet has | convnet lacks |", "|---|---|---|"]
    unwritable = set()
    for ns, names, present, missing in rows:
        marked = not_in_keras_format(present) if ns == "layers" else set()
        unwritable |= marked
        if missing and len(missing) <= ALL_BUT_AT_MOST < len(present):
            has = f"all {len(names)} but the {len(missing)} at right"
        elif not missing:
            has = f"all {len(names)}: {_names(present, marked)}"
        else:
            has = (f"{len(present)} of {len(names)}: {_names(present, marked)}" if present
                   else "none")
        if len(missing) <= LACKS_LISTED_UP_TO:
            lacks = _names(missing) if missing else "-"
        else:
            lacks = f"{len(missing)} names"
        lines.append(f"| {_label(ns)} | {has} | {lacks} |")
    if unwritable:
        lines += ["", f"{NOT_IN_KERAS_FORMAT} convnet saves these layers in its own format "
                      f"(`.cnet`) only, not yet in Keras' `.keras`."]
    return "\n".join(lines) + "\n"


def full_table(rows=None):
    """docs/keras-api.md: every name, with or without convnet."""
    rows = coverage() if rows is None else rows
    version = keras_names()["keras_version"]
    out = ["# Keras API coverage", "",
           "<!-- Generated by scripts/api_table.py --write; tests/test_docs.py checks "
           "it against the code. Do not edit by hand. -->", "",
           f"Every public name of Keras {version}'s namespaces below, and whether convnet "
           f"has it under the same name (`import convnet as keras`). Generated from the code "
           f"by `scripts/api_table.py`; a test fails when this page and the code disagree. "
           f"`keras.ops.nn` and `keras.ops.numpy` are not listed apart: every name in them "
           f"is also in `keras.ops`.", "",
           summary_table(rows)]
    for ns, names, present, missing in rows:
        out += [f"## {_label(ns)}", "",
                f"{len(present)} of {len(names)}.", ""]
        if present:
            marked = not_in_keras_format(present) if ns == "layers" else set()
            out += ["**In convnet:** " + _names(present, marked), ""]
        if missing:
            out += ["**Not in convnet:** " + _names(missing), ""]
    return "\n".join(out)


def readme_section(table):
    return f"{START}\n{table}{END}"


def _current_readme_section():
    with open(README, encoding="utf-8") as f:
        text = f.read()
    if START not in text or END not in text:
        raise SystemExit(f"README.md has no {START} ... {END} markers")
    before, rest = text.split(START, 1)
    inside, after = rest.split(END, 1)
    return text, before, START + inside + END, after


def check():
    """Problems: the files whose table differs from the code's."""
    rows = coverage()
    problems = []
    if _current_readme_section()[2] != readme_section(summary_table(rows)):
        problems.append("README.md")
    try:
        with open(FULL_TABLE, encoding="utf-8") as f:
            if f.read() != full_table(rows):
                problems.append("docs/keras-api.md")
    except FileNotFoundError:
        problems.append("docs/keras-api.md")
    return problems


def write():
    rows = coverage()
    text, before, _, after = _current_readme_section()
    with open(README, "w", encoding="utf-8") as f:
        f.write(before + readme_section(summary_table(rows)) + after)
    with open(FULL_TABLE, "w", encoding="utf-8") as f:
        f.write(full_table(rows))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true")
    group.add_argument("--check", action="store_true")
    group.add_argument("--refresh-keras", action="store_true")
    args = parser.parse_args()
    if args.refresh_keras:
        refresh_keras_names()
    elif args.write:
        write()
    elif args.check:
        problems = check()
        if problems:
            sys.exit(f"out of date: {', '.join(problems)}; run python scripts/api_table.py "
                     f"--write")
    else:
        print(summary_table(), end="")


if __name__ == "__main__":
    main()
