"""Export details a new user meets: dtype mismatches named, files readable as the umask says."""

import os
import stat
import subprocess
import sys

import pytest
import torch
from torch import nn

import pyclosure


def test_float32_module_with_float64_examples_says_what_to_change(tmp_path):
    module = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(
        TypeError,
        match=r"parameters are float32 but example input 'input' is float64: pass "
        r"float32 examples .* or convert the module \(module.to\(torch.float64\)\)",
    ):
        pyclosure.export(module, tmp_path / "m.pt", example_inputs=(torch.zeros(2, 3, dtype=torch.float64),))
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_exported_files_are_readable_as_the_umask_allows(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        for name in ("m.pt", "m.nnp"):
            pyclosure.export(
                nn.Sequential(nn.Linear(3, 2)), tmp_path / name, example_inputs=(torch.zeros(2, 3),)
            )
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    finally:
        os.umask(old)


def _threads_in_fresh_process(tmp_path, env_value):
    model = tmp_path / "m.pt"
    if not model.exists():
        pyclosure.export(nn.Sequential(nn.Linear(3, 2)), model, example_inputs=(torch.zeros(2, 3),))
    code = (
        "import numpy as np; from pyclosure.bridge import Model, get_num_threads\n"
        f"m = Model({str(model)!r}); m(np.zeros((4, 3), dtype=np.float32)); print('threads', get_num_threads())"
    )
    env = {k: v for k, v in os.environ.items() if k != "NN_CLOSURE_NUM_THREADS"}
    if env_value is not None:
        env["NN_CLOSURE_NUM_THREADS"] = env_value
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False, cwd=tmp_path
    )


@pytest.mark.parametrize("value, threads", [(None, "1"), ("3", "3")])
def test_bridge_runs_calls_on_one_thread_unless_the_environment_says_otherwise(tmp_path, value, threads):
    proc = _threads_in_fresh_process(tmp_path, value)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["threads", threads]


def test_a_bad_thread_count_in_the_environment_fails_the_load_with_its_name(tmp_path):
    proc = _threads_in_fresh_process(tmp_path, "two")
    assert proc.returncode != 0
    assert "NN_CLOSURE_NUM_THREADS='two' is not a thread count" in proc.stderr
