"""Run f90wrap for an example's Fortran modules inside a build folder (meson custom_target helper).

f90wrap has no output-directory option, so this script changes into the
output folder first, runs ``python -m f90wrap --direct-c`` on the sources, and
renames the generated Python shadow module to its installed name. The
extension module is ``pyclosure._NAME`` (NAME "burgers" unless given).

Usage: gen_f90wrap.py OUTDIR KIND_MAP SOURCE.f90 SHADOW_NAME.py [NAME [MORE_SOURCES.f90 ...]]
"""

import os
import subprocess
import sys


def main(argv):
    outdir, kind_map, source, shadow = argv[:4]
    name = argv[4] if len(argv) > 4 else "burgers"
    kind_map = os.path.abspath(kind_map)
    sources = [os.path.abspath(s) for s in [source] + argv[5:]]
    os.makedirs(outdir, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "f90wrap",
        "-m",
        name,
        "--f90-mod-name",
        f"pyclosure._{name}",
        "--direct-c",
        "-k",
        kind_map,
        *sources,
    ]
    subprocess.run(cmd, cwd=outdir, check=True, stdout=subprocess.DEVNULL)
    os.replace(os.path.join(outdir, f"{name}.py"), os.path.join(outdir, shadow))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
