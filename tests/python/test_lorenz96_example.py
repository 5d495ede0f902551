"""The Lorenz '96 example checks its own result: red-noise spread matches error, white does not."""

import pathlib
import subprocess
import sys

import pytest

EXAMPLE = pathlib.Path(__file__).parents[2] / "examples" / "lorenz96"


@pytest.mark.slow
def test_lorenz96_quick_example_holds_its_spread_and_error_checks(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE / "run.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=EXAMPLE,
        timeout=1800,
        check=False,
    )
    assert proc.returncode == 0 and "lorenz96: OK" in proc.stdout, proc.stdout + proc.stderr
    assert "meaning {'kind': 'tendency', 'per': 'point'}, Lipschitz bound" in proc.stdout
    assert (tmp_path / "closure_ar1.pt").exists()
