"""pyclosure installs into a user's own environment as the README says: an sdist, built without
isolation into a new venv that holds torch and pyproject.toml's build requirements and nothing
else, gives a package whose ``pyclosure config`` flags build and run a Fortran host."""

import os
import pathlib
import re
import shlex
import subprocess
import sys
import tarfile

import pytest
import tomllib

REPO = pathlib.Path(__file__).parents[2]
HOST = REPO / "tests" / "fortran" / "host_program.f90"
STOCK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TORCH = "torch==2.13.0"  # this machine's CPU wheel; the package itself accepts a range


def _run(cmd, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False, **kw)
    assert proc.returncode == 0, f"{shlex.join(map(str, cmd))}\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    return proc.stdout


def _clean_env(bin_dir=None):
    """An environment as a new shell with ``bin_dir`` activated would have: no Python or loader
    variables of ours, the stock PATH after the environment's own bin."""
    drop = {"PYTHONPATH", "PYTHONHOME", "LD_LIBRARY_PATH", "VIRTUAL_ENV", "MESON", "CONDA_PREFIX"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = f"{bin_dir}:{STOCK_PATH}" if bin_dir else STOCK_PATH
    if bin_dir:
        env["VIRTUAL_ENV"] = str(pathlib.Path(bin_dir).parent)
    return env


def _readme_build_requirements():
    """The packages the README's 'own environment' section says to install before pyclosure."""
    text = (REPO / "README.md").read_text()
    lines = [ln for ln in text.splitlines() if ln.startswith("pip install ") and "meson-python" in ln]
    assert len(lines) == 1, "the README names the build requirements on exactly one 'pip install' line"
    words = shlex.split(lines[0].split("#")[0])[2:]
    return sorted(words)


def test_readme_lists_exactly_the_build_requirements_of_pyproject():
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    without_torch = sorted(r for r in requires if not re.match(r"torch\b", r))
    assert _readme_build_requirements() == without_torch


def test_package_declares_a_torch_range_not_a_pin():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    for spec in (*meta["project"]["dependencies"], *meta["build-system"]["requires"]):
        if re.match(r"torch\b", spec):
            assert "==" not in spec and ">=" in spec and "<" in spec, spec


@pytest.mark.slow
def test_sdist_installs_into_a_users_venv_and_a_fortran_host_builds_from_config(tmp_path):
    venv_bin = pathlib.Path(sys.executable).parent
    # The sdist of the committed sources, built the way a release would be.
    _run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", tmp_path / "dist", REPO],
         env=_clean_env(venv_bin), cwd=tmp_path)
    (sdist,) = (tmp_path / "dist").glob("pyclosure-*.tar.gz")
    with tarfile.open(sdist) as tar:
        member = next(m for m in tar.getmembers() if m.name.count("/") == 1 and m.name.endswith("/pyproject.toml"))
        requires = tomllib.loads(tar.extractfile(member).read().decode())["build-system"]["requires"]

    # A user's environment: a new venv with torch and the build requirements, nothing else.
    user = tmp_path / "user-venv"
    _run([sys.executable, "-m", "venv", user])
    env = _clean_env(user / "bin")
    pip = [user / "bin" / "python", "-m", "pip", "install", "-q"]
    _run([*pip, TORCH], env=env)
    _run([*pip, TORCH, *(r for r in requires if not re.match(r"torch\b", r))], env=env)
    _run([*pip, "--no-build-isolation", sdist], env=env, cwd=tmp_path)

    # A model exported by that environment's pyclosure, a host built with its config flags only.
    model = tmp_path / "plain_affine64.pt"
    script = tmp_path / "export_model.py"  # a file: TorchScript reads the module's source
    script.write_text(f"""
import torch, pyclosure
class PlainAffine(torch.nn.Module):  # the host program checks y = W x + b by hand
    def __init__(self):
        super().__init__()
        self.register_buffer("w", torch.arange(1, 7, dtype=torch.float64).reshape(2, 3) / 8.0)
        self.register_buffer("b", torch.tensor([-0.5, -0.25], dtype=torch.float64))
    def forward(self, x):
        return x @ self.w.t() + self.b
pyclosure.export(PlainAffine(), {str(model)!r}, torch.zeros(4, 3, dtype=torch.float64))
""")
    _run([user / "bin" / "python", script], env=env, cwd=tmp_path)
    config = user / "bin" / "pyclosure"
    fflags = shlex.split(_run([config, "config", "--fflags"], env=env))
    libs = shlex.split(_run([config, "config", "--ldflags", "--libs"], env=env))
    assert all(str(user) in f for f in fflags if f.startswith("-I")), fflags
    _run(["gfortran", *fflags, HOST, "-o", tmp_path / "host", *libs], env=env, cwd=tmp_path)
    out = _run([tmp_path / "host", model], env=_clean_env())
    assert "host_program flux:" in out and "1.250" in out and "3.750" in out
