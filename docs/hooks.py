"""MkDocs hooks: the pages made from the code at build time.

- API reference: one page per public module, rendered by mkdocstrings from the docstrings, so
  a new layer, op or function appears as soon as its module exports it.
- Examples: one page per ``examples/*.py``: its docstring, the figures committed under
  ``docs/figures/`` whose names start with the script's name, and the script itself.
"""
import ast
import os
import types

from mkdocs.structure.files import File

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The modules a user imports, in the order the reference lists them.
REFERENCE = ["convnet", "layers", "models", "ops", "optimizers", "losses", "metrics",
             "callbacks", "initializers", "regularizers", "constraints", "activations",
             "datasets", "utils", "random", "backend", "inference", "kernels", "distributed",
             "export", "plot"]


def _import(name):
    """The module as the environment has it: the installed package, or the checkout on
    PYTHONPATH (its kernels built in place)."""
    import importlib
    return importlib.import_module(name)


def _members(module):
    """What a page documents: the module's ``__all__`` where it has one, else the public
    functions and classes it defines; an alias (``MaxPool2D = MaxPooling2D``) once, under
    its first name. Submodules are returned apart: each gets a section of its own."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = sorted(name for name, value in vars(module).items()
                       if not name.startswith("_") and callable(value)
                       and getattr(value, "__module__", None) == module.__name__)
    members, submodules, seen = [], [], set()
    for name in names:
        value = getattr(module, name)
        if isinstance(value, types.ModuleType):
            if value.__name__.startswith(module.__name__ + "."):
                submodules.append(value.__name__)
        elif id(value) not in seen:
            seen.add(id(value))
            members.append(name)
    return members, submodules


def _block(path, members, heading=None):
    lines = [f"## {heading}", ""] if heading else []
    lines += [f"::: {path}", "    options:", "      show_root_heading: false"]
    if members:
        lines += ["      members:"] + [f"        - {name}" for name in members]
    else:
        lines += ["      members: false"]
    return "\n".join(lines) + "\n"


def _reference_page(page):
    path = "convnet" if page == "convnet" else f"convnet.{page}"
    module = _import(path)
    members, submodules = _members(module)
    doc = (module.__doc__ or "").strip()
    parts = [f"# {path}", ""]
    if page == "convnet":
        # The top level: its classes and functions; each namespace has its own page.
        parts.append(_block(path, members))
    elif page == "ops":
        # Keras' namespaces of ops, each with its own section.
        parts.append(_block(path, []))
        for sub in ("core", "math", "nn", "numpy", "linalg", "image"):
            submodule = _import(f"{path}.{sub}")
            parts.append(_block(f"{path}.{sub}", _members(submodule)[0], f"convnet.ops.{sub}"))
    else:
        parts.append(_block(path, members))
        for sub in submodules:
            parts.append(_block(sub, _members(_import(sub))[0], sub))
    return "\n".join(parts)


def _examples():
    folder = os.path.join(ROOT, "examples")
    return sorted(name[:-3] for name in os.listdir(folder) if name.endswith(".py"))


def _example_page(stem):
    path = os.path.join(ROOT, "examples", f"{stem}.py")
    with open(path, encoding="utf-8") as f:
        docstring = ast.get_docstring(ast.parse(f.read())) or ""
    title, _, rest = docstring.partition("\n")
    figures = sorted(name for name in os.listdir(os.path.join(ROOT, "docs", "figures"))
                     if name.startswith(stem) and name.endswith(".png"))
    lines = [f"# {stem}.py", "", title.strip(), ""]
    body = rest.strip("\n")
    if body:
        lines += ["```text", body, "```", ""]
    for figure in figures:
        lines += [f"![The figure {stem}.py draws](../figures/{figure})", ""]
    if figures:
        lines += ["The figure as the script drew it; its title says which run "
                  "(`python scripts/docs_figures.py` draws them all again).", ""]
    lines += ["## The script", "", f'```python', f'--8<-- "examples/{stem}.py"', "```", ""]
    return "\n".join(lines)


def on_config(config):
    nav = []
    for entry in config["nav"]:
        if isinstance(entry, dict) and entry.get("API reference") == "reference/":
            entry = {"API reference": [{("convnet" if m == "convnet" else f"convnet.{m}"):
                                        f"reference/{m}.md"} for m in REFERENCE]}
        elif isinstance(entry, dict) and entry.get("Examples") == "examples/":
            entry = {"Examples": [{f"{s}.py": f"examples/{s}.md"} for s in _examples()]}
        nav.append(entry)
    config["nav"] = nav
    return config


def on_files(files, config):
    for module in REFERENCE:
        files.append(File.generated(config, f"reference/{module}.md",
                                    content=_reference_page(module)))
    for stem in _examples():
        files.append(File.generated(config, f"examples/{stem}.md", content=_example_page(stem)))
    return files
