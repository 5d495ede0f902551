"""The C contract test (tests/c/test_header.c) built from `pyclosure config` flags."""

import pathlib
import subprocess

C_DIR = pathlib.Path(__file__).parents[1] / "c"


def test_c_program_exercises_every_path_of_the_header(model_dir, build_c):
    exe = build_c(C_DIR / "test_header.c", name="test_header", extra=["-lm"])
    proc = subprocess.run([str(exe), str(model_dir)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAIL" not in proc.stdout
    assert ", 0 failed" in proc.stdout
