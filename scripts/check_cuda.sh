#!/usr/bin/env bash
# Compile the CUDA code (caffe_layers .cu with nvcc for the SEPNETS_CUDA_ARCHS
# list, the layer .cpp and GPU tests without CPU_ONLY, the cuDNN engine, and
# Caffe's cuDNN and NCCL code as patched here; cmake/CudaCompileCheck.cmake)
# on a machine without a GPU, so it cannot rot unseen.  cuBLAS/cuRAND headers
# come from the nvidia-cublas/nvidia-curand wheels when the toolkit lacks them,
# cuDNN/NCCL headers from the nvidia-cudnn-cu13/nvidia-nccl-cu13 wheels.
# SEPNETS_JOBS=N: parallel compiles (default: all cores).
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
    # all or nothing: an interrupted extraction is never taken for a finished one
    .venv/bin/python -m sepnets.caffeio.env wheel-headers "$HDRS/include" /include/ \
      cublas_v2.h,curand.h "$dl"/nvidia_cublas-*.whl "$dl"/nvidia_curand-*.whl ||
      die "cannot read the cuBLAS/cuRAND headers from the downloaded wheels"
  fi
  INC="-DSEPNETS_CUDA_CHECK_INCLUDE=$HDRS/include"
fi

# cuDNN and NCCL headers: installed wheels (a CUDA set-up's .venv), else the
# include/ folders of the downloaded wheels (the libraries are not needed).
LIBHDRS="$ROOT/third_party/cuda-headers"
for lib in cudnn nccl; do
  inc=$(.venv/bin/python -m sepnets.caffeio.env nvidia-include "$lib" 2>/dev/null || true)
  if [ -z "$inc" ]; then
    inc="$LIBHDRS/$lib/include"
    if [ ! -f "$inc/$lib.h" ]; then
      dl="$ROOT/third_party/downloads"
      mkdir -p "$dl"
      if ! ls "$dl"/nvidia_${lib}_cu13-*.whl >/dev/null 2>&1; then
        say "fetching the $lib headers from the nvidia-$lib-cu13 wheel"
        .venv/bin/pip download -q --no-deps --disable-pip-version-check -d "$dl" "nvidia-$lib-cu13" ||
          die "pip download nvidia-$lib-cu13 failed"
      fi
      whl=$(ls "$dl"/nvidia_${lib}_cu13-*.whl | sort | tail -n 1)
      .venv/bin/python -m sepnets.caffeio.env wheel-headers "$inc" "nvidia/$lib/include/" \
        "$lib.h" "$whl" || die "cannot read the $lib headers from $whl"
    fi
  fi
  INC="$INC -DSEPNETS_$(echo "$lib" | tr a-z A-Z)_CHECK_INCLUDE=$inc"
  eval "${lib}_inc=\$inc"
done
# shellcheck disable=SC2086
cmake -S "$ROOT" -B "$ROOT/build" $INC >/dev/null
# shellcheck disable=SC2154  # cudnn_inc, nccl_inc: set by the loop above
say "compiling the CUDA code with $NVCC ($("$NVCC" --version | tail -1)), cuDNN $(
  awk '/define CUDNN_(MAJOR|MINOR|PATCHLEVEL) /{v=v sep $3; sep="."} END{print v}' \
  "$cudnn_inc/cudnn_version.h"), NCCL $(
  awk '/define NCCL_(MAJOR|MINOR|PATCH) /{v=v sep $3; sep="."} END{print v}' "$nccl_inc/nccl.h")"
log="$ROOT/build/cuda_compile_check.log"
start=$(date +%s)
if ! cmake --build "$ROOT/build" --target cuda_compile_check -- -j"${SEPNETS_JOBS:-$(nproc)}" > "$log" 2>&1; then
  grep -E "error" "$log" | head -20 >&2
  die "CUDA compile check failed: $(grep -m1 -E 'error' "$log" || tail -1 "$log") (log: $log)"
fi
# The cuDNN engine and Caffe's NCCL code must have been part of it.
for o in cudnn_binary_pattern_conv_layer.cu.o caffe/cudnn_conv_layer.cu.o caffe/parallel.cpp.o \
         caffe/layer_factory.cpp.o; do
  [ -f "build/cuda_compile_check/$o" ] || die "CUDA compile check did not compile $o (no cuDNN/NCCL headers?)"
done
say "ok in $(( $(date +%s) - start )) s: $(ls build/cuda_compile_check | grep -c '\.o$') project files, $(
  ls build/cuda_compile_check/caffe | wc -l) of Caffe's cuDNN/NCCL files"
