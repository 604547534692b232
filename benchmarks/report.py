"""Run the benchmark suite and write BENCHMARKS.md: ms, GFLOP/s and the ratio to PyTorch.

    python benchmarks/report.py                 # run 3 times, write BENCHMARKS.md
    python benchmarks/report.py --save          # ... and store the run as a baseline
    python benchmarks/report.py --compare 0001  # ... and fail if convnet got >25% slower

Baselines are pytest-benchmark's own save/compare files, under benchmarks/baseline/
in a folder per machine type; a comparison only means something on the machine that
saved them.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from datetime import date

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from accuracy import errors, lines as accuracy_lines  # noqa: E402
from conftest import medians, ratio_rows  # noqa: E402
from memory import peak_bytes  # noqa: E402
from workloads import WORKLOADS, torch  # noqa: E402

# The targets: convnet / PyTorch channels_last median time, at 1 and 2 threads (issue 19
# for W1, W7 and W8; issue 14 for W9-W11; issue 5 for the rest).
W8 = next(w.name for w in WORKLOADS if w.name.startswith("W8"))
W7_CONTENDED = next(w.name for w in WORKLOADS if w.contended)
TARGETS = {"W1 conv forward": 0.8, "W1 conv forward+backward": 0.85,
           "W2 conv 1->32 5x5 forward+backward": 1.0, "W4 max pool forward": 1.0,
           "W4 max pool forward+backward": 1.0, "W5 avg pool forward": 1.0,
           "W5 avg pool forward+backward": 1.0, "W7 training step": 0.9, W8: 0.8,
           "W9 batch norm forward+backward": 1.0, "W10 depthwise 3x3 forward+backward": 1.0,
           "W11 Conv-BN-ReLU block training step": 1.0}
# Issue 19: with a busy process beside it, W7 at 2 threads takes at most this many times
# its time at 1 thread.
CONTENDED_TARGET = 1.1


def run_suite(json_path, extra):
    command = [sys.executable, "-m", "pytest", os.path.join(HERE), "--benchmark-only", "-q",
               f"--benchmark-json={json_path}",
               f"--benchmark-storage=file://{os.path.join(HERE, 'baseline')}", *extra]
    subprocess.run(command, check=True, cwd=os.path.dirname(HERE))
    with open(json_path) as f:
        return json.load(f)


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def table(runs):
    """Each time is the median over the runs of that run's median; each ratio the median
    over the runs of the ratio within a run, where convnet and PyTorch ran side by side."""
    times = [medians(run["benchmarks"]) for run in runs]
    ratios = [{(w, t): r for w, t, _, _, r in ratio_rows(run["benchmarks"])} for run in runs]
    flops = {b["extra_info"]["workload"]: b["extra_info"]["flops"]
             for b in runs[0]["benchmarks"]}
    lines = ["| workload | threads | convnet ms | GFLOP/s | PyTorch channels_last ms | "
             "PyTorch NCHW ms | Keras 3 (torch) ms | ratio | target |",
             "|---|---|---|---|---|---|---|---|---|"]
    for workload, threads in sorted(ratios[0]):
        median, reference, nchw, keras = (_median(t.get((workload, threads, implementation))
                                                  for t in times)
                                          for implementation in ("convnet", "torch channels_last",
                                                                 "torch nchw", "keras torch"))
        ratio = _median(r.get((workload, threads)) for r in ratios)
        gflops = f"{flops[workload] / median / 1e9:.1f}" if flops[workload] else "-"
        target = TARGETS.get(workload)
        verdict = "-" if target is None or ratio is None else (
            f"<= {target} {'met' if ratio <= target else 'missed'}")
        lines.append("| " + " | ".join([
            workload, str(threads), f"{median * 1e3:.2f}", gflops,
            "-" if reference is None else f"{reference * 1e3:.2f}",
            "-" if nchw is None else f"{nchw * 1e3:.2f}",
            "-" if keras is None else f"{keras * 1e3:.2f}",
            "-" if ratio is None else f"{ratio:.2f}", verdict]) + " |")
    return lines


def contended_lines(runs):
    """W7 beside a busy process: convnet at 2 threads over 1, the median over the runs."""
    ratios = []
    for run in runs:
        times = medians(run["benchmarks"])
        one, two = (times.get((W7_CONTENDED, n, "convnet")) for n in (1, 2))
        if one and two:
            ratios.append(two / one)
    if not ratios:
        return []
    ratio = statistics.median(ratios)
    return [f"W7 beside a busy process (`{W7_CONTENDED}` above): convnet at 2 threads takes "
            f"{ratio:.2f}x its time at 1 thread, median of the runs' ratios "
            f"{', '.join(f'{r:.2f}' for r in ratios)} (target <= {CONTENDED_TARGET}: "
            f"{'met' if ratio <= CONTENDED_TARGET else 'missed'}).", ""]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", action="store_true", help="store this run as a baseline")
    parser.add_argument("--compare", metavar="ID",
                        help="compare with stored run ID; fail if a median got >25%% slower")
    parser.add_argument("--runs", type=int, default=3,
                        help="run the suite this many times; the table takes medians over "
                             "the runs (a shared machine drifts over minutes)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(HERE), "BENCHMARKS.md"))
    args = parser.parse_args()
    extra = ["--benchmark-save=baseline"] if args.save else []
    if args.compare:
        extra += [f"--benchmark-compare={args.compare}", "--benchmark-compare-fail=median:25%"]
    with tempfile.TemporaryDirectory() as tmp:
        # --save and --compare apply to the first run.
        runs = [run_suite(os.path.join(tmp, f"results{i}.json"), extra if i == 0 else [])
                for i in range(args.runs)]
    memory = {name: peak_bytes(name) for name in ("convnet", "torch channels_last")
              if name == "convnet" or torch is not None}
    cpu = runs[0]["machine_info"].get("cpu", {}).get("brand_raw", platform.processor())
    lines = [
        "# Benchmarks", "",
        f"Written by `python benchmarks/report.py` on {date.today()}: {cpu}, "
        f"{os.cpu_count()} logical CPUs, Python {platform.python_version()}. The suite ran "
        f"{len(runs)} times; each time is the median over the runs of the median of "
        "pytest-benchmark's rounds, and each ratio (convnet / PyTorch channels_last, measured "
        "side by side in the same run at the same thread count) the median of the runs' "
        "ratios. GFLOP/s counts the convolutions and matrix products of one step.", "",
        *table(runs), "",
        *contended_lines(runs),
        "Peak memory of W1 forward + backward above its inputs (fresh process, RSS): "
        + ", ".join(f"{name} {peak / 2**20:.1f} MiB" for name, peak in memory.items())
        + ("" if len(memory) < 2 else f", ratio {memory['convnet'] / memory['torch channels_last']:.2f}"
           " (target <= 1.2)") + ".", "",
        "## Accuracy", "",
        "Float32 max abs error of each algorithm against a float64 reference, pass by pass, "
        "on W1's shapes with inputs, kernels and output gradients uniform in [-1, 1] "
        "(`python benchmarks/accuracy.py`). \"auto\" may pick an algorithm for a pass only "
        "at <= 4x im2col's error and inside PyTorch-parity tolerance.", "",
        *accuracy_lines(errors()), ""]
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
