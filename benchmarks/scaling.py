"""How the kernels scale with threads: W1 and W7 (issue 5 asks for >= 10x at 16 threads
than at 1) timed at several thread counts in one pytest-benchmark run, with PyTorch CPU
in the same run where it is installed.

    python benchmarks/scaling.py --threads 1,2,4,8,16 --out SCALING.md

Speedup = median at the fewest threads / median at the most, for each implementation.
"""
import argparse
import os
import platform
import sys
import tempfile
from datetime import date

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from conftest import medians  # noqa: E402
from report import run_suite  # noqa: E402

TARGET_SPEEDUP = 10.0   # at 16 threads, for W1 and W7


def table(results, counts):
    counts = sorted(counts)
    times = medians(results["benchmarks"])
    lines = ["| workload | implementation | " + " | ".join(f"{n} thr ms" for n in counts)
             + f" | speedup at {counts[-1]} thr |",
             "|---|---|" + "---|" * (len(counts) + 1)]
    for workload, implementation in dict.fromkeys((w, i) for w, _, i in times):
        row = [times.get((workload, n, implementation)) for n in counts]
        speedup = "-" if None in (row[0], row[-1]) else f"{row[0] / row[-1]:.1f}x"
        lines.append(f"| {workload} | {implementation} | "
                     + " | ".join("-" if t is None else f"{t * 1e3:.2f}" for t in row)
                     + f" | {speedup} |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2,4,8,16",
                        help="thread counts, run in this order (the table sorts them)")
    parser.add_argument("-k", default="W1 or W7", help="pytest -k selection of workloads")
    parser.add_argument("--max-time", default="0.5", help="pytest-benchmark seconds per case")
    parser.add_argument("--out", default=None, help="also write the table to this file")
    args = parser.parse_args()
    counts = [int(n) for n in args.threads.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        results = run_suite(os.path.join(tmp, "results.json"),
                            [f"--bench-threads={args.threads}", "-k", args.k,
                             f"--benchmark-max-time={args.max_time}"])
    cpu = results["machine_info"].get("cpu", {}).get("brand_raw", platform.processor())
    lines = ["# Thread scaling", "",
             f"Written by `python benchmarks/scaling.py` on {date.today()}: {cpu}, "
             f"{os.cpu_count()} logical CPUs, Python {platform.python_version()}. Medians of "
             "pytest-benchmark rounds; speedup = median at 1 thread / median at "
             f"{max(counts)} (the goal: W1 and W7 >= {TARGET_SPEEDUP:.0f}x at 16).", "",
             *table(results, counts), ""]
    text = "\n".join(lines)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
