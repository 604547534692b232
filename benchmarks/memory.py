"""Peak memory of W1 forward + backward above its inputs, convnet beside PyTorch.

Each measurement runs in a fresh interpreter: import the library, build the
inputs, reset the kernel's peak-RSS counter (/proc/self/clear_refs), run the
step once and report how far the resident set rose above where it started:
outputs, gradients, scratch buffers and whatever the library keeps for later
(a second step could reuse freed memory without a trace in the RSS). Linux only.

    python benchmarks/memory.py
"""
import json
import subprocess
import sys

CHILD = r"""
import json, sys
import numpy as np
sys.path.insert(0, "benchmarks")
from workloads import WORKLOADS

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024

workload = next(w for w in WORKLOADS if w.name == "W1 conv forward+backward")
implementation = sys.argv[1]
step = (workload.convnet() if implementation == "convnet"
        else workload.torch(implementation == "torch channels_last"))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets VmHWM to the current RSS
start = status("VmRSS:")
step()
print(json.dumps(status("VmHWM:") - start))
"""


def peak_bytes(implementation, threads=1):
    env_threads = str(threads)
    result = subprocess.run(
        [sys.executable, "-c", CHILD, implementation], capture_output=True, text=True,
        check=True, env={"OMP_NUM_THREADS": env_threads, "PATH": "/usr/bin:/bin"})
    return json.loads(result.stdout)


def main():
    rows = {name: peak_bytes(name) for name in ("convnet", "torch channels_last", "torch nchw")}
    for name, peak in rows.items():
        print(f"{name:22s} {peak / 2**20:7.1f} MiB above the inputs")
    print(f"ratio convnet / torch channels_last: "
          f"{rows['convnet'] / rows['torch channels_last']:.2f}")


if __name__ == "__main__":
    main()
