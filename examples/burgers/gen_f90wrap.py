"""Run f90wrap for burgers_core inside a build folder (meson custom_target helper).

f90wrap has no output-directory option, so this script changes into the
output folder first, runs ``python -m f90wrap --direct-c`` on the core, and
renames the generated Python shadow module to its installed name.

Usage: gen_f90wrap.py OUTDIR KIND_MAP SOURCE.f90 SHADOW_NAME.py
"""

import os
import subprocess
import sys


def main(argv):
    outdir, kind_map, source, shadow = argv
    kind_map = os.path.abspath(kind_map)
    source = os.path.abspath(source)
    os.makedirs(outdir, exist_ok=True)
    cmd = [sys.executable, "-m", "f90wrap", "-m", "burgers",
           "--f90-mod-name", "pyclosure._burgers", "--direct-c",
           "-k", kind_map, source]
    subprocess.run(cmd, cwd=outdir, check=True, stdout=subprocess.DEVNULL)
    os.replace(os.path.join(outdir, "burgers.py"), os.path.join(outdir, shadow))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
