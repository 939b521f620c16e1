#!/usr/bin/env bash
# Check the CUDA path of BinaryPatternConvolution on a GPU host, with a CUDA
# build made on this machine (no Caffe packages needed on the host).
#
#   bash scripts/device_check.sh prepare [BUILD_DIR]   # here: writes .device/
#   bash scripts/device_check.sh run [OUT_DIR]         # on the GPU host, repo root
#
# prepare: packs BUILD_DIR (default build-cuda; see scripts/device_bundle.sh)
#   into .device/bundle.tar.xz, and the real data subset, model, net and
#   solver into .device/check (python -m sepnets.device_check).
# run: on GPU 0 and on the host's CPU, with the same binary:
#   1. Caffe's GTest binary (the project's layers and the stock convolution,
#      every test typed for CPU and GPU) -> gtest_gpu.log
#   2. caffe test of the trained ResNet-20, binarized by the pattern-mean net,
#      on CPU and GPU -> caffe_test_{cpu,gpu}.log (the two accuracies must agree)
#   3. caffe train of the pattern net (fixed patterns) from the same model,
#      seeded, on GPU and a few iterations on CPU -> train_gpu.log, train_cpu.log
#   4. tools/bench_conv.py --gpu 0 -> bench_conv_resnet20_gpu.md
# Results go to OUT_DIR (default $OUT, else .device/out). Exits non-zero when
# a test fails or CPU and GPU disagree.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
say() { printf '[device-check] %s\n' "$*"; }
die() { printf '[device-check] error: %s\n' "$*" >&2; exit 1; }

prepare() {
  local build=${1:-build-cuda}
  set -e
  bash scripts/device_bundle.sh "$build" .device/bundle
  say "packing .device/bundle.tar.xz"
  XZ_OPT=-T0 tar -C .device -cJf .device/bundle.tar.xz.part bundle
  mv .device/bundle.tar.xz.part .device/bundle.tar.xz
  rm -rf .device/bundle
  .venv/bin/python -m sepnets.device_check inputs --out .device/check
  # The Python runtime that matches Caffe's generated caffe_pb2 (protoc 3.21),
  # for hosts whose own protobuf is newer; hosts reach no package index.
  .venv/bin/pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux2014_x86_64 -d .device/wheels protobuf==4.21.12 ||
    say "warning: no protobuf wheel downloaded; the host's own protobuf will be used"
  say "ready: $(du -sh .device | cut -f1) under .device (carry it to the GPU host)"
}

check() { python3 -m sepnets.device_check "$@"; }   # logs and solvers: the Python package

run() {
  local out=${1:-${OUT:-.device/out}} fail=0
  mkdir -p "$out"
  [ -f .device/bundle.tar.xz ] && [ -d .device/check ] ||
    die ".device/bundle.tar.xz or .device/check missing: run 'bash scripts/device_check.sh prepare' first"
  rm -rf /tmp/sepnets-bundle && mkdir -p /tmp/sepnets-bundle
  tar -C /tmp/sepnets-bundle -xJf .device/bundle.tar.xz 2>/dev/null ||
    python3 -m tarfile -e .device/bundle.tar.xz /tmp/sepnets-bundle || die "cannot unpack .device/bundle.tar.xz"
  export PYTHONPATH="$ROOT/python${PYTHONPATH:+:$PYTHONPATH}"   # before env.sh: it asks sepnets
  # shellcheck disable=SC1091
  source /tmp/sepnets-bundle/bundle/env.sh
  if ls .device/wheels/*.whl > /dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/sepnets-site .device/wheels/*.whl &&
      export PYTHONPATH="/tmp/sepnets-site:$PYTHONPATH"
  fi
  {
    date -u; nvidia-smi -L; ldd --version | head -1
    caffe --version && caffe device_query -gpu 0
  } > "$out/device.txt" 2>&1 || { cat "$out/device.txt"; die "caffe does not start on this host"; }
  tail -n 25 "$out/device.txt"

  say "1/4 GTest (CPU and GPU)"
  # By its path: threadsafe death tests re-execute argv[0], which PATH lookup breaks.
  # Two OpenMP threads: on a 16-core host oneDNN's threads made the CPU gradient
  # checks (thousands of tiny convolutions) 100x slower (logs/device-check/README.md).
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} "$(command -v test.testbin)" 0 \
    > "$out/gtest_gpu.log" 2>&1 || fail=1
  grep -E '^\[  (PASSED|FAILED) |^\[==========\]|FAILED  \]' "$out/gtest_gpu.log" | tail -n 15

  local net=.device/check/pattern_mean.prototxt model=.device/check/full.caffemodel
  local iters
  iters=$(check test-iter .device/check/solver.prototxt) || die "cannot read .device/check/solver.prototxt"
  say "2/4 caffe test, pattern-mean net from the full-precision model, CPU vs GPU"
  for dev in cpu gpu; do
    local args=(test -model "$net" -weights "$model" -iterations "$iters")
    [ $dev = gpu ] && args+=(-gpu 0)
    GLOG_logtostderr=1 caffe "${args[@]}" > "$out/caffe_test_$dev.log" 2>&1 || fail=1
  done
  local agree
  agree=$(check agree "$out/caffe_test_cpu.log" "$out/caffe_test_gpu.log" 2>&1) || fail=1
  say "$((iters * 100)) test images, $agree"

  say "3/4 caffe train, patterns fixed: GPU (all iterations), CPU (20)"
  GLOG_logtostderr=1 caffe train -solver .device/check/solver.prototxt -weights "$model" -gpu 0 \
    > "$out/train_gpu.log" 2>&1 || fail=1
  check solver .device/check/solver.prototxt /tmp/sepnets-solver-cpu.prototxt --max-iter 20 || fail=1
  GLOG_logtostderr=1 caffe train -solver /tmp/sepnets-solver-cpu.prototxt -weights "$model" \
    > "$out/train_cpu.log" 2>&1 || fail=1
  for dev in gpu cpu; do
    say "  $dev: $(check train-summary "$out/train_$dev.log" 2>&1)"
  done

  say "4/4 bench_conv on GPU 0 (batch 128)"
  python3 tools/bench_conv.py --gpu 0 --batch 128 --iterations 20 \
    --out "$out/bench_conv_resnet20_gpu.md" || fail=1
  [ $fail = 0 ] && say "all checks passed" || say "SOME CHECKS FAILED (see $out)"
  return $fail
}

case "${1:-}" in
  prepare) shift; prepare "$@" ;;
  run) shift; run "$@" ;;
  *) echo "usage: bash scripts/device_check.sh prepare [BUILD_DIR] | run [OUT_DIR]" >&2; exit 2 ;;
esac
