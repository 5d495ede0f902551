"""A NetCDF dataset 5x larger than a memory cap trains without being loaded whole.

The training runs in a fresh process. Its resident memory after importing torch and xarray,
opening the files lazily, building the model and a warm-up ``fit`` of one epoch over two chunks
is the baseline: torch alone is ~300 MB, and the first read and training step load libraries
and start thread pools once (~100 MB measured here), none of which grows with the data. The
peak (``VmHWM``, reset through ``/proc/self/clear_refs`` just before training) must then stay
within ``CAP`` of the baseline while one epoch streams ``5 * CAP`` of data from disk. As a control, the same process then loads the data whole
and must exceed the cap: the measurement can see a whole load.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("xarray")

from streamdata import fields, write_netcdf

MIB = 2**20
CAP = 24 * MIB
NX, NT_FILE, FILES, CHUNK = 256, 16384, 4, 1024  # 4 files x 2 variables x 16 MiB = 128 MiB

SCRIPT = textwrap.dedent("""
    import json, sys
    import torch, xarray as xr
    from pyclosure.stream import StreamDataset
    from pyclosure.train import fit

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024

    def reset_peak():
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")

    torch.set_num_threads(1)
    paths = sys.argv[1:]
    data = StreamDataset(paths, ["u"], "flux", chunk=%(chunk)d)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(%(nx)d, 32), torch.nn.Tanh(), torch.nn.Linear(32, %(nx)d))
    warm = StreamDataset(paths[0], ["u"], "flux", chunk=%(chunk)d)
    warm.chunks = warm.chunks[:2]
    fit(model, warm, epochs=1, batch_size=1024, val_fraction=0.0, progress=False)
    base = status("VmRSS"); reset_peak()
    hist = fit(model, data, epochs=1, batch_size=1024, lr=1e-3, val_fraction=0.0, progress=False)
    stream_peak = status("VmHWM")
    steps = len(data) // 1024
    base2 = status("VmRSS"); reset_peak()
    whole = xr.open_mfdataset(paths, combine="nested", concat_dim="time").load()
    load_peak = status("VmHWM")
    print(json.dumps({"base": base, "stream_peak": stream_peak, "base2": base2,
                      "load_peak": load_peak, "loss": hist.train, "steps": steps,
                      "samples": len(data)}))
""") % {"chunk": CHUNK, "nx": NX}


def test_training_streams_data_five_times_the_memory_cap(tmp_path):
    paths, on_disk = [], 0
    for i in range(FILES):
        ds = fields(NT_FILE, NX, seed=i)
        paths.append(str(write_netcdf(tmp_path / f"part{i}.nc", ds, chunk=CHUNK)))
        on_disk += (tmp_path / f"part{i}.nc").stat().st_size
        del ds
    assert on_disk >= 5 * CAP, f"only {on_disk / MIB:.0f} MiB on disk"
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, *paths], capture_output=True, text=True, timeout=600, check=False
    )
    assert run.returncode == 0, run.stderr[-3000:]
    r = json.loads(run.stdout.strip().splitlines()[-1])
    assert r["samples"] == FILES * NT_FILE and np.isfinite(r["loss"][0])
    grew = r["stream_peak"] - r["base"]
    print(
        f"data on disk {on_disk / MIB:.0f} MiB, cap {CAP / MIB:.0f} MiB; baseline RSS "
        f"{r['base'] / MIB:.0f} MiB, streaming peak +{grew / MIB:.1f} MiB, "
        f"whole load peak +{(r['load_peak'] - r['base2']) / MIB:.1f} MiB"
    )
    assert grew < CAP, (
        f"streaming one epoch raised the peak RSS by {grew / MIB:.1f} MiB (cap {CAP / MIB:.0f})"
    )
    assert r["load_peak"] - r["base2"] > CAP  # the control: a whole load is visible
