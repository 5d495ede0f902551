#!/usr/bin/env bash
# The GPU check: build pyclosure against the torch installed on this machine and run
# what needs a GPU, in a few minutes, with no package registry.
#
#   examples/gpu/check.sh [--wheels DIR] [--out DIR]
#
# 1. The virtual environment PYTHON lives in, if it does, else a new one (.venv-gpu)
#    that sees the system's packages (its torch, with CUDA); the build requirements
#    pyproject.toml names and pytest come from there, or
#    from the wheels in DIR (made beforehand on a machine with a registry by
#    `examples/gpu/check.sh --fetch DIR`); nothing is downloaded here.
# 2. pyclosure built without build isolation, so the bridge links this torch.
# 3. The tests that concern the GPU: link (libtorch_cuda reached), the rank-to-GPU
#    mapping, the on-device route, and tests/python/test_gpu.py (Python, C, Fortran
#    on cuda:0; they skip with the reason where there is no GPU).
# 4. With nvfortran present: examples/gpu/acc_forward.f90 (OpenACC host_data use_device).
# 5. pyclosure bench --device cuda:0 for the MLP at 256, 4096 and 32768 columns:
#    host-device copies apart, and the device-resident route beside the host route.
# Everything it prints goes to OUT (default build/gpu-check) as well: check.log,
# pytest.log, bench.json, bench.txt. The last line says whether all held.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
out=build/gpu-check
wheels=
fetch=
while (($#)); do
  case $1 in
    --wheels) wheels=$(realpath "$2"); shift 2 ;;
    --out) out=$2; shift 2 ;;
    --fetch) fetch=$2; shift 2 ;;
    *) echo "check.sh: unknown argument $1 (use --wheels DIR, --out DIR or --fetch DIR)" >&2; exit 2 ;;
  esac
done
python=${PYTHON:-python3}
requires() {  # pyproject.toml's build requirements without torch, plus pytest
  "$python" - <<'PY'
import re
text = open("pyproject.toml").read()
block = re.search(r"requires = \[(.*?)\]", text, re.S).group(1)
names = [s for s in re.findall(r'"([^"]+)"', block) if not s.startswith("torch")]
print("\n".join(names + ["pytest"]))
PY
}

if [ -n "$fetch" ]; then  # on a machine with a registry: the wheels to carry
  mkdir -p "$fetch"
  mapfile -t reqs < <(requires)
  exec "$python" -m pip download -q --only-binary=:all: -d "$fetch" "${reqs[@]}"
fi

mkdir -p "$out"
out=$(realpath "$out")
exec > >(tee "$out/check.log") 2>&1
failed=()
step() { echo; echo "== $*"; }

step "machine"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$python" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "available", torch.cuda.is_available(), "devices", torch.cuda.device_count(), *(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())))' \
  || { echo "check.sh: $python cannot import torch"; exit 1; }
for tool in cc c++ gfortran; do
  command -v $tool >/dev/null || { echo "check.sh: $tool is needed to build pyclosure and is missing"; exit 1; }
done

if "$python" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)'; then  # torch lives in a venv: use it
  step "environment (the virtual environment of $python)"
  venv=$("$python" -c 'import os, sys; print(os.path.join(sys.prefix, "bin"))')
else
  step "environment (.venv-gpu, system site packages)"
  [ -x .venv-gpu/bin/python ] || "$python" -m venv --system-site-packages .venv-gpu
  venv=$root/.venv-gpu/bin
fi
mapfile -t reqs < <(requires)
missing=()
for r in "${reqs[@]}"; do  # a distribution of that name is installed (the system's count)
  name=$(echo "$r" | sed -E 's/[<>=!].*//')
  "$venv/python" -c "import importlib.metadata as m; m.version('$name')" 2>/dev/null || missing+=("$r")
done
if ((${#missing[@]})); then
  if [ -z "$wheels" ]; then
    echo "check.sh: missing ${missing[*]}; give --wheels DIR (made with --fetch DIR where a registry is)"; exit 1
  fi
  "$venv/python" -m pip install -q --no-index --find-links "$wheels" "${missing[@]}" || exit 1
fi

step "build against $("$venv/python" -c 'import torch; print(torch.__version__)')"
start=$SECONDS
PATH=$venv:$PATH "$venv/python" -m pip install -q --no-index --no-build-isolation --no-deps \
  -Cbuild-dir=build/gpu . || { echo "check.sh: the build failed"; exit 1; }
echo "built in $((SECONDS - start)) s"
readelf -d "$("$venv/pyclosure" config --lib-dir)/libnnclosure.so" | grep NEEDED  # libtorch.so: brings libtorch_cuda

step "tests"
# Run from a folder outside the source tree, so that the installed package is imported.
(cd tests && "$venv/python" -m pytest -q -rs -p no:cacheprovider python/test_gpu_link.py python/test_device_map.py \
  python/test_device_route.py python/test_gpu.py 2>&1 | tee "$out/pytest.log") || failed+=(tests)

if command -v nvfortran >/dev/null; then
  step "OpenACC: nvfortran examples/gpu/acc_forward.f90"
  sources=$("$venv/pyclosure" config --fortran-source)  # the module, built by this compiler
  ld=$("$venv/pyclosure" config --ldflags)
  work=$(mktemp -d)
  (cd "$work" && nvfortran -acc -gpu=cc80,cc90 -O2 $sources "$root/examples/gpu/acc_forward.f90" $ld -lnnclosure \
    -o acc_forward && "$venv/python" "$root/examples/gpu/make_mlp.py" mlp.pt && ./acc_forward mlp.pt) \
    || failed+=(openacc)
else
  echo; echo "== OpenACC: skipped (no nvfortran on PATH)"
fi

step "bench (MLP float32, 256 / 4096 / 32768 columns, one thread, cuda:0)"
"$venv/pyclosure" bench --device cuda:0 --models mlp32 --batches 256 4096 32768 --threads 1 --rounds 3 \
  --no-pt2 --no-native --json "$out/bench.json" | tee "$out/bench.txt" || failed+=(bench)

echo
if ((${#failed[@]})); then echo "gpu check: FAILED (${failed[*]})"; exit 1; fi
echo "gpu check: all held"
