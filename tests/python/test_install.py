"""pyclosure installs into a user's own environment as docs/install.md says: an sdist, built without
isolation into a new venv that holds torch and pyproject.toml's build requirements and nothing
else, gives a package whose ``pyclosure config`` flags build and run a Fortran host."""

import json
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


def _documented_build_requirements():
    """The packages docs/install.md says to install before pyclosure."""
    text = (REPO / "docs" / "install.md").read_text()
    lines = [ln for ln in text.splitlines() if ln.startswith("pip install ") and "meson-python" in ln]
    assert len(lines) == 1, "docs/install.md names the build requirements on exactly one 'pip install' line"
    words = shlex.split(lines[0].split("#")[0])[2:]
    return sorted(words)


def test_install_page_lists_exactly_the_build_requirements_of_pyproject():
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    without_torch = sorted(r for r in requires if not re.match(r"torch\b", r))
    assert _documented_build_requirements() == without_torch


def test_package_declares_a_torch_range_not_a_pin():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    for spec in (*meta["project"]["dependencies"], *meta["build-system"]["requires"]):
        if re.match(r"torch\b", spec):
            assert "==" not in spec and ">=" in spec and "<" in spec, spec


@pytest.mark.slow
def test_sdist_installs_into_a_users_venv_and_a_fortran_host_builds_from_config(tmp_path):
    venv_bin = pathlib.Path(sys.executable).parent
    # The sdist of the committed sources, built the way a release would be.
    _run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", tmp_path / "dist", REPO],
        env=_clean_env(venv_bin),
        cwd=tmp_path,
    )
    (sdist,) = (tmp_path / "dist").glob("pyclosure-*.tar.gz")
    with tarfile.open(sdist) as tar:
        member = next(
            m for m in tar.getmembers() if m.name.count("/") == 1 and m.name.endswith("/pyproject.toml")
        )
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


def test_every_python_module_of_the_tree_is_installed():
    """pyclosure/meson.build lists the package's modules: one that is not listed would be missing
    from every install. Beside the tree's modules the package holds only the f90wrap shadow
    modules the build generates."""
    import pyclosure

    installed_dir = pathlib.Path(pyclosure.__file__).parent
    if installed_dir == REPO / "pyclosure":
        pytest.skip("pyclosure is imported from the source tree, not from an install")
    tree = {
        p.relative_to(REPO / "pyclosure").as_posix()
        for p in (REPO / "pyclosure").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    installed = {
        p.relative_to(installed_dir).as_posix()
        for p in installed_dir.rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert tree - installed == set(), "modules missing from pyclosure/meson.build's install lists"
    assert installed - tree <= {"burgers_core.py", "column_physics.py"}, installed - tree
    assert not list(installed_dir.rglob("meson.build")) and not (installed_dir / "host").exists()


def test_build_options_leave_out_the_demo_and_the_bench(tmp_path):
    """-Ddemo=false -Dbench=false configures a build that installs the library alone: no demo or
    benchmark module, program, extension or library (read from meson's install plan)."""
    meson = pathlib.Path(sys.executable).parent / "meson"
    if not meson.exists():
        pytest.skip("meson is not installed beside this Python")
    env = {**os.environ, "PATH": f"{meson.parent}:{os.environ['PATH']}"}
    _run([meson, "setup", tmp_path / "build", REPO, "-Ddemo=false", "-Dbench=false"], env=env)
    plan = json.loads(_run([meson, "introspect", "--installed", tmp_path / "build"], env=env))
    names = {pathlib.PurePosixPath(dest).as_posix().split("/pyclosure/", 1)[-1] for dest in plan.values()}
    assert {"__init__.py", "budget.py", "lib/libnnclosure.so", "lib/libnnclosure_fortran.so"} <= names, names
    assert any(n.startswith("_nnc.") for n in names) and any(n.startswith("_native_c.") for n in names)
    left_out = (
        "demo/",
        "bench/",
        "_burgers.",
        "_column.",
        "burgers_core",
        "column_physics",
        "bin/",
        "lib/libbench",
        "lib/libpyclosure_bench",
    )
    left_in = [n for n in names if n.startswith(left_out)]
    assert left_in == [], left_in


@pytest.mark.parametrize("part", ["demo", "bench"])
def test_a_command_whose_part_was_left_out_says_how_to_build_it(monkeypatch, capsys, part):
    import importlib.util

    from pyclosure import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == f"pyclosure.{part}" else real(name, *a)
    )
    assert cli.main([part, "--quick"]) == 2
    err = capsys.readouterr().err
    assert f"built without the {part} (meson option -D{part}=false)" in err and f"-D{part}=true" in err
