"""Time a coupled run (the Fortran Lorenz '96 host, 8 points per call) per thread count.

Runs `l96_host MODEL 0 STEPS` with NN_CLOSURE_NUM_THREADS=1 (the bridge's default) and
with libtorch's own default (one thread per physical core), in interleaved rounds, alone
and with busy processes spinning on the machine. Prints the median wall time of each and
the load average.

Usage: python threads.py HOST MODEL [--steps N] [--rounds R] [--busy B]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

import torch


def run(host, model, steps, threads, out):
    env = {**os.environ, "NN_CLOSURE_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    proc = subprocess.run(
        [host, model, "0", str(steps), out], capture_output=True, text=True, env=env, check=False
    )
    if proc.returncode != 0 or "l96_host: done" not in proc.stdout:
        sys.exit(f"l96_host failed: {proc.stdout}{proc.stderr}")
    return time.perf_counter() - start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("host")
    p.add_argument("model")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--busy", type=int, default=1, help="spinning processes in the busy runs")
    p.add_argument("--out", default=os.devnull)
    a = p.parse_args(argv)
    default = torch.get_num_threads()  # libtorch's default here: the physical cores
    counts = sorted({1, default})
    for busy in (0, a.busy):
        spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
        try:
            times = {n: [] for n in counts}
            for _ in range(a.rounds):
                for n in counts:
                    times[n].append(run(a.host, a.model, a.steps, n, a.out))
        finally:
            for s in spinners:
                s.kill()
                s.wait()
        load = os.getloadavg()[0]
        line = ", ".join(f"{n} thread(s) {statistics.median(t):.2f} s" for n, t in times.items())
        print(f"{busy} busy process(es), load {load:.1f}: {a.steps} steps x 4 calls: {line}")


if __name__ == "__main__":
    main()
