#!/usr/bin/env bash
# Compile the project's CUDA code (caffe_layers .cu with nvcc for the
# SEPNETS_CUDA_ARCHS list, the layer .cpp and GPU tests without CPU_ONLY)
# on a machine without a GPU, so it cannot rot unseen.  cuBLAS/cuRAND headers
# come from the nvidia-cublas/nvidia-curand wheels when the toolkit lacks them.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
say() { printf '[cuda-check] %s\n' "$*"; }
die() { printf '[cuda-check] error: %s\n' "$*" >&2; exit 1; }

bash scripts/setup.sh
NVCC=/usr/local/cuda/bin/nvcc
[ -x "$NVCC" ] || NVCC=$(command -v nvcc) || die "nvcc not found (install the CUDA toolkit)"
INC=""
if [ ! -f "$(dirname "$NVCC")/../include/cublas_v2.h" ]; then
  HDRS="$ROOT/third_party/cuda-headers"
  # installed wheels first (where the CUDA build finds them), else downloaded ones
  wheels=$(.venv/bin/python -m sepnets.caffeio.env nvidia-dir 2>/dev/null || true)
  if [ -n "$wheels" ] && [ -f "$wheels/include/cublas_v2.h" ] && [ -f "$wheels/include/curand.h" ]; then
    HDRS="$wheels"
  elif [ ! -f "$HDRS/include/cublas_v2.h" ] || [ ! -f "$HDRS/include/curand.h" ]; then
    say "fetching cuBLAS/cuRAND headers from the nvidia-cublas/nvidia-curand wheels"
    dl="$ROOT/third_party/downloads"
    mkdir -p "$dl"
    ls "$dl"/nvidia_cublas-*.whl >/dev/null 2>&1 && ls "$dl"/nvidia_curand-*.whl >/dev/null 2>&1 ||
      .venv/bin/pip download -q --no-deps --disable-pip-version-check -d "$dl" nvidia-cublas nvidia-curand ||
      die "pip download nvidia-cublas nvidia-curand failed"
    .venv/bin/python - "$dl" "$HDRS" <<'PY'
import glob, os, sys, zipfile
dl, out = sys.argv[1:]
os.makedirs(os.path.join(out, "include"), exist_ok=True)
for whl in sorted(glob.glob(os.path.join(dl, "nvidia_cu*.whl"))):
    with zipfile.ZipFile(whl) as z:
        for m in z.namelist():
            if "/include/" in m and not m.endswith("/"):
                dst = os.path.join(out, "include", m.split("/include/", 1)[1])
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                with z.open(m) as src, open(dst + ".part", "wb") as f:
                    f.write(src.read())
                os.replace(dst + ".part", dst)
PY
  fi
  INC="-DSEPNETS_CUDA_CHECK_INCLUDE=$HDRS/include"
fi
cmake -S "$ROOT" -B "$ROOT/build" $INC >/dev/null
say "compiling the project's CUDA code with $NVCC ($("$NVCC" --version | tail -1))"
log="$ROOT/build/cuda_compile_check.log"
if ! cmake --build "$ROOT/build" --target cuda_compile_check -- -j"$(nproc)" > "$log" 2>&1; then
  grep -E "error" "$log" | head -20 >&2
  die "CUDA compile check failed (log: $log)"
fi
say "ok: $(ls build/cuda_compile_check | tr '\n' ' ')"
