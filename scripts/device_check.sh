#!/usr/bin/env bash
# Check a CUDA build of the project's Caffe on a GPU host (cuDNN, the pattern
# layer's engines, NCCL as far as one GPU goes, speed against PyTorch), with a
# build made on this machine (no Caffe packages needed on the host).
#
#   bash scripts/device_check.sh prepare [BUILD_DIR]   # here: writes .device/
#   bash scripts/device_check.sh run [OUT_DIR]         # on the GPU host, repo root
#   bash scripts/device_check.sh run --cpu-only [OUT_DIR]   # the CPU halves only
#                                                    # (a try-out without a GPU)
#
# prepare: packs BUILD_DIR (default build-cuda; see scripts/device_bundle.sh)
#   into .device/bundle.tar.xz, and the real data subset, model, net, solver
#   and the speed comparison's nets into .device/check
#   (python -m sepnets.device_check inputs).
# run: on GPU 0 and on the host's CPU, with the same binary (about 10 minutes):
#   1. Caffe's GTest binary, filtered to the project's layers and engines,
#      Caffe's (cuDNN) convolution and deconvolution tests, the layer factory
#      and NCCL with one rank, on CPU and GPU -> gtest.log (every GPU test with
#      cuDNN where the build has it; exit 2 if none ran)
#   2. caffe test of the trained ResNet-20, binarized by the pattern-mean net,
#      on CPU and GPU -> caffe_test_{cpu,gpu}.log (the two accuracies must agree)
#   3. caffe train -gpu 0 of the pattern net (fixed patterns) from the same
#      model, seeded, and 20 iterations on CPU -> train_{gpu,cpu}.log (the
#      losses must agree)
#   4. multi-GPU: the NCCL tests of step 1 (pycaffe's calls with one rank:
#      broadcast, all-reduce); what needs two GPUs -> not_run.txt
#   5. tools/bench_conv.py --gpu 0 -> bench_conv_resnet20_gpu.md
#   6. training-step speed, Caffe with cuDNN / Caffe 1.0 / PyTorch with cuDNN
#      (the host's python3 with CUDA torch) -> bench_train_gpu.md
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
  local gpu=1
  if [ "${1:-}" = --cpu-only ]; then gpu=0; shift; fi
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
  local cudnn=OFF nccl=OFF
  grep -qx 'cudnn=ON' /tmp/sepnets-bundle/bundle/features.txt 2>/dev/null && cudnn=ON
  grep -qx 'nccl=ON' /tmp/sepnets-bundle/bundle/features.txt 2>/dev/null && nccl=ON
  {
    date -u; [ $gpu = 1 ] && nvidia-smi -L; ldd --version | head -1
    echo "build: cuDNN $cudnn, NCCL $nccl"
    ldd "$(command -v caffe)" | grep -E '^\s*lib(cudnn|nccl|cublas)[^ ]* =>|not found'
    caffe --version && { [ $gpu = 0 ] || caffe device_query -gpu 0; }
  } > "$out/device.txt" 2>&1 || { cat "$out/device.txt"; die "caffe does not start on this host"; }
  ! grep -q 'not found' "$out/device.txt" ||
    die "libraries missing on this host ($(grep 'not found' "$out/device.txt" | awk '{print $1}' | tr '\n' ' ')): pip install the nvidia wheels named (nvidia-cudnn-cu13, nvidia-nccl-cu13, ...)"
  tail -n 25 "$out/device.txt"

  say "1/6 GTest: the project's layers, Caffe's convolutions, layer factory, NCCL (CPU$([ $gpu = 1 ] && echo ' and GPU'))"
  # By its path: threadsafe death tests re-execute argv[0], which PATH lookup breaks.
  # Two OpenMP threads: on a 16-core host oneDNN's threads made the CPU gradient
  # checks (thousands of tiny convolutions) 100x slower (logs/device-check/README.md).
  local filter='*BinaryPattern*:*Dnnl*:*Omp*:*Convolution*:*Deconvolution*:*LayerFactory*:*NCCL*'
  # --cpu-only: not the GPU types of the typed tests (2, 3; 4, 5: the pattern
  # layer's cuDNN engine), nor the GPU-only suites.
  [ $gpu = 1 ] || filter="$filter-*/2.*:*/3.*:*/4.*:*/5.*:*GPU*:*CuDNN*:*NCCL*"
  local expect=()
  [ $gpu = 1 ] && expect=(GPU)
  [ $gpu = 1 ] && [ $cudnn = ON ] && expect+=(cuDNN)
  [ $gpu = 1 ] && [ $nccl = ON ] && expect+=(NCCL)
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} "$(command -v test.testbin)" 0 --gtest_filter="$filter" \
    > "$out/gtest.log" 2>&1 || fail=1
  local summary
  summary=$(check gtest-summary "$out/gtest.log" ${expect[@]:+--expect "${expect[@]}"} 2>&1) || fail=1
  say "  ${summary//$'\n'/; }"

  local net=.device/check/pattern_mean.prototxt model=.device/check/full.caffemodel
  local iters devs=(cpu)
  [ $gpu = 1 ] && devs+=(gpu)
  iters=$(check test-iter .device/check/solver.prototxt) || die "cannot read .device/check/solver.prototxt"
  say "2/6 caffe test, pattern-mean net from the full-precision model, ${devs[*]}"
  for dev in "${devs[@]}"; do
    local args=(test -model "$net" -weights "$model" -iterations "$iters")
    [ $dev = gpu ] && args+=(-gpu 0)
    GLOG_logtostderr=1 caffe "${args[@]}" > "$out/caffe_test_$dev.log" 2>&1 || fail=1
  done
  local agree
  if [ $gpu = 1 ]; then
    agree=$(check agree "$out/caffe_test_cpu.log" "$out/caffe_test_gpu.log" 2>&1) || fail=1
  else
    agree="top-1 $(check accuracy "$out/caffe_test_cpu.log" 2>&1)" || fail=1
  fi
  say "  $((iters * 100)) test images, $agree"

  say "3/6 caffe train, patterns fixed:$([ $gpu = 1 ] && echo ' GPU (all iterations),') CPU (20)"
  if [ $gpu = 1 ]; then
    GLOG_logtostderr=1 caffe train -solver .device/check/solver.prototxt -weights "$model" -gpu 0 \
      > "$out/train_gpu.log" 2>&1 || fail=1
  fi
  check solver .device/check/solver.prototxt /tmp/sepnets-solver-cpu.prototxt --max-iter 20 || fail=1
  GLOG_logtostderr=1 caffe train -solver /tmp/sepnets-solver-cpu.prototxt -weights "$model" \
    > "$out/train_cpu.log" 2>&1 || fail=1
  for dev in "${devs[@]}"; do
    say "  $dev: $(check train-summary "$out/train_$dev.log" 2>&1)"
  done
  if [ $gpu = 1 ]; then
    agree=$(check losses-agree "$out/train_cpu.log" "$out/train_gpu.log" 2>&1) || fail=1
    say "  ${agree//$'\n'/; }"
  fi

  if [ $gpu = 1 ] && [ $nccl = ON ]; then
    say "4/6 multi-GPU: Caffe's NCCL class with one rank ran in step 1 (NCCLSingleRankTest)"
  else
    say "4/6 multi-GPU: NCCL not exercised (build NCCL $nccl$([ $gpu = 0 ] && echo ', --cpu-only'))"
  fi
  {
    echo "Not run by this check (one GPU): needs two or more GPUs."
    echo "- caffe train -solver S -gpu all (or -gpu 0,1): Caffe's NCCL path (NCCL<Dtype>::Run,"
    echo "  one solver thread per GPU, ncclCommInitAll, layer-wise all-reduce); NCCL refuses one"
    echo "  device twice, so -gpu 0,0 cannot stand in for it."
    echo "- pycaffe multi-process training (python/train.py --gpus 0,1) over NCCL unique ids."
    echo "- The losses of a 2-GPU run against a 1-GPU run at twice the batch."
  } > "$out/not_run.txt"
  say "  not run (needs two GPUs): $out/not_run.txt"

  if [ $gpu = 1 ]; then
    say "5/6 bench_conv on GPU 0 (batch 128)"
    python3 tools/bench_conv.py --gpu 0 --batch 128 --iterations 20 \
      --out "$out/bench_conv_resnet20_gpu.md" || fail=1
    say "6/6 training step on GPU 0: Caffe with cuDNN, Caffe 1.0, PyTorch with cuDNN"
    check bench-gpu .device/check/bench --gpu 0 --out "$out/bench_train_gpu.md" \
      --torch-python "${SEPNETS_BENCH_PYTHON:-python3}" > /dev/null || fail=1
    [ -f "$out/bench_train_gpu.md" ] && grep '^| ' "$out/bench_train_gpu.md"
  else
    say "5/6, 6/6: GPU benchmarks skipped (--cpu-only)"
  fi
  [ $fail = 0 ] && say "all checks passed" || say "SOME CHECKS FAILED (see $out)"
  return $fail
}

case "${1:-}" in
  prepare) shift; prepare "$@" ;;
  run) shift; run "$@" ;;
  *) echo "usage: bash scripts/device_check.sh prepare [BUILD_DIR] | run [--cpu-only] [OUT_DIR]" >&2; exit 2 ;;
esac
