"""Run the examples and copy their figures into docs/figures/, where the docs site shows them.

    python scripts/docs_figures.py             # the real runs (the main example's 12 epochs
                                               # take minutes; the ResNet's longer)
    python scripts/docs_figures.py --fast      # every example in its fast mode, for a look
    python scripts/docs_figures.py --only pooling_gallery.py    # one (and what it needs)

The figures are committed so that building the docs runs no training; rerun this after a
change to an example or to convnet.plot. Each PNG is named after the script that drew it
(docs/hooks.py puts it on that script's page).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIGURES = os.path.join(ROOT, "docs", "figures")

# (script, its arguments, the PNG it writes), in order: feature_maps reads the model file
# the first one writes.
RUNS = [
    ("fashion_mnist_convnet.py", [], "fashion_mnist_training.png"),
    ("feature_maps.py", ["--model", "fashion_mnist_convnet.keras"], "feature_maps.png"),
    ("pooling_gallery.py", [], "pooling_gallery.png"),
    ("fashion_mnist_resnet.py", [], "fashion_mnist_resnet_training.png"),
    ("fashion_mnist_bn.py", [], "fashion_mnist_bn_training.png"),
]
# The scripts that take --fast (a few batches of the embedded subset, one epoch).
FAST = {"fashion_mnist_convnet.py", "fashion_mnist_resnet.py", "fashion_mnist_bn.py"}
# What a script needs run before it.
NEEDS = {"feature_maps.py": "fashion_mnist_convnet.py"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="run the examples' fast modes")
    parser.add_argument("--only", nargs="*", help="these scripts only")
    args = parser.parse_args()
    os.makedirs(FIGURES, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    with tempfile.TemporaryDirectory() as work:
        for script, script_args, png in RUNS:
            wanted = set(args.only or [s for s, _, _ in RUNS])
            if script not in wanted | {NEEDS.get(w) for w in wanted}:
                continue
            extra = ["--fast"] if args.fast and script in FAST else []
            command = [sys.executable, os.path.join(ROOT, "examples", script), *script_args,
                       *extra, "--out", work]
            print("$", " ".join(command[1:]), flush=True)
            subprocess.run(command, cwd=work, env=env, check=True)
            shutil.copyfile(os.path.join(work, png),
                            os.path.join(FIGURES, script.replace(".py", ".png")))


if __name__ == "__main__":
    main()
