"""The online-training step benchmark (python -m pyclosure.bench.train_step): both sides run,
on the same data, and report a ratio per column count with the load average."""

import numpy as np
import torch


def test_train_step_bench_times_both_sides_on_the_same_data(tmp_path):
    from pyclosure.bench import train_step

    r = train_step.run(columns=(16, 64), rounds=2, warmup=2, steps=5, folder=tmp_path)
    assert set(r["columns"]) == {16, 64}
    for v in r["columns"].values():
        assert v["fortran_s"] > 0 and v["python_s"] > 0
        assert len(v["ratios"]) == 2 and v["ratio"] > 0
    assert len(r["loadavg_before"]) == 3
    text = train_step.format_result(r)
    assert "| 16 |" in text and "load average" in text


def test_the_python_side_builds_the_fortran_drivers_batch():
    from pyclosure.bench import train_step

    x, y = train_step.batch(3)
    # Fortran x(i, j) = sin(0.7 i + 1.3 j), 1-based, is torch x[j - 1, i - 1]
    assert x.dtype == torch.float32 and x.shape == (3, train_step.NFEAT)
    assert x[2, 4] == np.float32(np.sin(0.7 * 5 + 1.3 * 3))
    assert y[0, 1] == np.float32(np.cos(0.4 * 2 + 0.9 * 1))
