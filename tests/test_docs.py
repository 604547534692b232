"""The documentation holds: the site builds with warnings as errors, the code on its pages
runs, the README's Keras API table claims only what convnet has, the README and the pages
point only inside the repository and say what the code does, and the package reports the
version pyproject.toml declares."""
import glob
import importlib.util
import os
import re
import subprocess
import sys
import types

import numpy as np
import pytest

import convnet
from convnet import layers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*path):
    with open(os.path.join(ROOT, *path), encoding="utf-8") as f:
        return f.read()


def _python_blocks(markdown):
    """The ```python fenced blocks of a page, in order."""
    return re.findall(r"^```python\n(.*?)^```$", markdown, flags=re.DOTALL | re.MULTILINE)


def _run_page(page, tmp_path, monkeypatch):
    """Run every python block of docs/`page` in order, in one namespace, in `tmp_path`."""
    blocks = _python_blocks(_read("docs", *page.split("/")))
    assert blocks, f"docs/{page} has no python blocks"
    monkeypatch.chdir(tmp_path)           # pages save files
    threads = convnet.get_num_threads()   # pages set the thread count
    namespace = {"__name__": "docs_page"}
    try:
        for number, block in enumerate(blocks, start=1):
            try:
                exec(compile(block, f"docs/{page}, python block {number}", "exec"), namespace)
            except Exception as error:
                raise AssertionError(f"python block {number} of docs/{page} failed:\n"
                                     f"{block}") from error
    finally:
        convnet.set_num_threads(threads)
    return namespace


def test_every_code_block_of_the_keras_page_runs(tmp_path, monkeypatch):
    namespace = _run_page("keras.md", tmp_path, monkeypatch)
    assert len(_python_blocks(_read("docs", "keras.md"))) >= 8
    assert namespace["accuracy"] > 0.5    # one short epoch learns (chance is 0.1)
    assert namespace["restored"].count_params() == namespace["model"].count_params()
    # The custom training loop's gradients reach every weight (none is all zeros).
    assert all(np.abs(g).max() > 0 for g in namespace["gradients"])


@pytest.mark.parametrize("page", ["guides/layers.md", "guides/training.md",
                                  "guides/saving.md", "guides/performance.md"])
def test_every_code_block_of_the_guides_runs(page, tmp_path, monkeypatch):
    if page == "guides/saving.md":
        pytest.importorskip("h5py")
        pytest.importorskip("onnxruntime")
    _run_page(page, tmp_path, monkeypatch)


def test_the_distributed_guide_is_python_that_compiles():
    # It needs mpiexec and MPI in the process, so the MPI tests run its script instead
    # (examples/fashion_mnist_distributed.py); here its blocks must at least be Python.
    for number, block in enumerate(_python_blocks(_read("docs", "guides", "distributed.md"))):
        compile(block, f"docs/guides/distributed.md, python block {number + 1}", "exec")


def test_the_docs_build_with_warnings_as_errors(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install '.[docs]')")
    site = tmp_path / "site"
    # From outside the checkout, so the pages' hooks import convnet as the environment has
    # it (installed, or this checkout on PYTHONPATH), not the checkout's unbuilt sources.
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         os.path.join(ROOT, "mkdocs.yml"), "--site-dir", str(site)],
        cwd=tmp_path, env=dict(os.environ, NO_MKDOCS_2_WARNING="1"), capture_output=True,
        text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-5000:]
    # The API reference, made from the docstrings.
    page = (site / "reference" / "layers" / "index.html").read_text(encoding="utf-8")
    for name in ("Conv2D", "MaxPooling2D", "BatchNormalization", "RandomFlip"):
        assert f'id="convnet.layers.{name}"' in page, name
    assert "TensorFlow's rule" in page            # Conv2D's docstring, rendered
    # Every example has its page, with every figure it draws.
    spec = importlib.util.spec_from_file_location(
        "docs_figures", os.path.join(ROOT, "scripts", "docs_figures.py"))
    docs_figures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(docs_figures)
    drawn = {script for script, _, _ in docs_figures.RUNS}
    for script in os.listdir(os.path.join(ROOT, "examples")):
        if script.endswith(".py"):
            html = (site / "examples" / script[:-3] / "index.html").read_text(encoding="utf-8")
            if script in drawn:
                assert os.path.exists(os.path.join(ROOT, "docs", "figures",
                                                   script[:-3] + ".png"))
                assert f'src="../../figures/{script[:-3]}.png"' in html, script


def _api_table():
    spec = importlib.util.spec_from_file_location("api_table",
                                                  os.path.join(ROOT, "scripts", "api_table.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_keras_api_tables_match_the_code():
    problems = _api_table().check()
    assert not problems, (f"{', '.join(problems)} out of date with the code: run "
                          f"python scripts/api_table.py --write")


def _namespace(ns):
    module = convnet
    for part in filter(None, ns.split(".")):
        module = getattr(module, part)
    return module


def _claims():
    """{namespace: names} that the README's table says convnet has, read from its text."""
    keras_names = _api_table().keras_names()["namespaces"]
    section = _read("README.md").split("[start:keras-api]")[1].split("[end:keras-api]")[0]
    claims = {}
    for row in section.splitlines():
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        match = re.fullmatch(r"`keras(?:\.([\w.]+))?`", cells[0])
        if not match:
            continue
        ns, has, lacks = match.group(1) or "", cells[1], cells[2]
        if re.match(r"all \d+ but", has):
            # "all N but the ones at right": Keras' names less those.
            listed = set(re.findall(r"`(\w+)`", lacks))
            assert listed and listed <= set(keras_names[ns])
            claims[ns] = [n for n in keras_names[ns] if n not in listed]
        else:
            claims[ns] = re.findall(r"`(\w+)`", has)
    return claims


def test_every_name_the_readme_table_claims_is_there():
    claims = _claims()
    assert set(claims) == set(_api_table().NAMESPACES)
    assert len(claims["layers"]) >= 60 and len(claims["ops"]) >= 300
    for ns, names in claims.items():
        module = _namespace(ns)
        for name in names:
            value = getattr(module, name, None)   # what `keras.<ns>.<name>` finds
            assert value is not None, f"the README claims keras.{ns}.{name}"
            assert (not isinstance(value, types.ModuleType)
                    or value.__name__.startswith("convnet.")), f"keras.{ns}.{name}"


@pytest.mark.parametrize("ns, names", [
    ("layers", ["LSTM", "GRU", "Conv1D", "Conv3D", "MultiHeadAttention", "Embedding",
                "TimeDistributed", "Lambda"]),
    ("datasets", ["imdb", "reuters", "cifar100"]),
    ("callbacks", ["TensorBoard"]),
    ("losses", ["CTC", "Dice", "Hinge"]),
    ("optimizers", ["Ftrl", "LossScaleOptimizer"]),
])
def test_the_readme_table_does_not_claim_what_convnet_lacks(ns, names):
    for name in names:
        assert not hasattr(_namespace(ns), name), f"convnet has keras.{ns}.{name} now"
        assert name not in _claims()[ns], f"the README claims keras.{ns}.{name}"


def test_the_layers_marked_as_cnet_only_are_refused_in_keras_format_and_the_rest_saved(
        tmp_path):
    """The dagger the README puts after a layer (saved as .cnet only) holds for every layer
    that can be made with no arguments: saving it as .keras is refused exactly then."""
    pytest.importorskip("h5py")
    section = _read("README.md").split("[start:keras-api]")[1].split("[end:keras-api]")[0]
    row = next(line for line in section.splitlines() if line.startswith("| `keras.layers`"))
    marked = set(re.findall(r"`(\w+)`\u2020", row))
    tried = 0
    for name in _claims()["layers"]:
        cls = getattr(layers, name)
        if not isinstance(cls, type) or cls in (layers.Layer, layers.InputLayer):
            continue
        try:
            layer = cls()
        except TypeError:
            continue                      # needs arguments
        try:
            model = convnet.Sequential([convnet.Input((6, 6, 2)), layer])
        except ValueError:
            continue                      # a merge layer: it takes several inputs
        path = str(tmp_path / f"{name}.keras")
        if name in marked:
            with pytest.raises(ValueError):
                model.save(path)
        else:
            model.save(path)
        tried += 1
    assert tried >= 10


def _markdown_files():
    files = ["README.md", "ARCHITECTURE.md", "CHANGELOG.md"]
    files += sorted(os.path.relpath(p, ROOT)
                    for p in glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True))
    return files


@pytest.mark.parametrize("name", _markdown_files())
def test_the_pages_point_only_inside_the_repository(name):
    text = _read(name)
    assert not re.search(r"\bissues? #?\d+|(?<![\w/])#\d+\b", text, re.IGNORECASE), (
        f"{name} names an issue number a reader cannot see")
    assert "shared/" not in text, f"{name} points outside the repository"
    here = os.path.dirname(os.path.join(ROOT, name))
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue                                  # a web address, or an anchor
        path = os.path.normpath(os.path.join(here, target.split("#")[0]))
        assert path.startswith(ROOT + os.sep), f"{name} links outside: {target}"
        if name.startswith("docs") and "/reference/" not in path and "/examples/" not in path:
            assert os.path.exists(path), f"{name} links to a missing file: {target}"
        elif not name.startswith("docs"):
            assert os.path.exists(path), f"{name} links to a missing file: {target}"
    # Paths named in code spans: every one is in the repository.
    for path in re.findall(r"`((?:examples|benchmarks|scripts|docs|tests|convnet)/[\w./-]+)`",
                           text):
        assert os.path.exists(os.path.join(ROOT, path.rstrip("/"))), f"{name}: {path}"


def _save_rows():
    """The rows of the README's table of what save writes under which name."""
    section = _read("README.md").split("[start:save-formats]")[1].split("[end:save-formats]")[0]
    rows = []
    for line in section.splitlines():
        if line.startswith("|") and not line.startswith("|---") and "| call |" not in line:
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _sample_names(name_cell, call):
    """File names the row's 'file name' cell covers."""
    stem = "w" if "weights" in call else "m"
    if name_cell.startswith("ends in"):
        return [stem + re.search(r"`([^`]+)`", name_cell).group(1)]
    if "ending in" in name_cell:
        return [stem + re.search(r"`([^`]+)`", name_cell).group(1)]
    # "any other name, `.x` by convention": that one, and a name of no convention.
    return [stem + re.search(r"`([^`]+)`", name_cell).group(1), stem + ".bin"]


def test_the_readme_says_which_format_save_writes_under_which_name(tmp_path):
    pytest.importorskip("h5py")
    from convnet.saving import MAGIC
    model = convnet.Sequential([convnet.Input((4, 4, 1)), layers.Conv2D(2, 3),
                                layers.Flatten(), layers.Dense(3)])
    rows = _save_rows()
    assert {row[0] for row in rows} == {"`model.save(path)`", "`model.save_weights(path)`",
                                        '`model.export(path, format="onnx")`'}
    checked = 0
    for call, name_cell, writes in rows:
        if "export" in call:
            continue                      # tests/test_onnx.py exports
        for filename in _sample_names(name_cell, call):
            path = str(tmp_path / filename)
            save = model.save if call == "`model.save(path)`" else model.save_weights
            if writes.startswith("nothing"):
                with pytest.raises(ValueError, match="h5"):
                    save(path)
                continue
            save(path)
            with open(path, "rb") as f:
                start = f.read(8)
            if writes.startswith("Keras 3's own format: a zip"):
                assert start[:4] == b"PK\x03\x04", filename
            elif writes.startswith("Keras 3's weights file (HDF5"):
                assert start == b"\x89HDF\r\n\x1a\n", filename
            else:
                assert writes.startswith("convnet's own format"), writes
                assert start == MAGIC, filename
            restored = convnet.load_model(path) if save == model.save else None
            if restored is not None:
                assert restored.count_params() == model.count_params()
            checked += 1
    assert checked >= 6


def test_the_readme_says_what_to_do_about_threads_on_a_busy_machine():
    from convnet import _wait_policy
    readme = _read("README.md")
    section = readme.split("[start:busy-machine]")[1].split("[end:busy-machine]")[0]
    for advice in ("convnet.set_num_threads(1)", "OMP_NUM_THREADS", "threads x processes",
                   "OMP_WAIT_POLICY=passive", "hvd.init()", "adaptive=False",
                   "CONVNET_ADAPTIVE_THREADS=0", "/proc/stat"):
        assert advice in section, advice
    # How often it says convnet looks at the load is how often it does.
    from convnet._core import threads
    assert threads.LOAD_SAMPLE_SECONDS == 0.25 and "four times a second" in section
    # The spin count it names is the one convnet sets.
    spin = int(_wait_policy.GOMP_SPIN_COUNT)
    assert f"GOMP_SPINCOUNT={spin}" in section and f"about {spin:,} iterations" in section
    assert '--8<-- "README.md:busy-machine"' in _read("docs", "guides", "performance.md")


def test_the_package_reports_the_version_pyproject_declares():
    declared = re.search(r'^version = "([^"]+)"', _read("pyproject.toml"), re.MULTILINE)
    assert declared and convnet.__version__ == declared.group(1)
    assert f"## [{convnet.__version__}] - " in _read("CHANGELOG.md")
