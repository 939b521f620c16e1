#!/usr/bin/env bash
# The project's tests: set-up (idempotent), Caffe's GTest binary (Caffe's
# whole test suite and the project's layer tests), then pytest.
#   bash scripts/test.sh [pytest args...]
# SEPNETS_SHARED_DIR: the shared data folder (default: ../shared beside the repo).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
say() { printf '[test] %s\n' "$*"; }

SEPNETS_BUILD_TESTS=1 bash scripts/setup.sh
BUILD_DIR=build
[ "${SEPNETS_CUDA:-0}" = 1 ] && BUILD_DIR=build-cuda

say "Caffe GTest binary: $BUILD_DIR/caffe/test/test.testbin (Caffe's own suite with the project's engines as DEFAULT, and the project's tests)"
# Caffe's tests read their data relative to Caffe's source tree; on a
# CPU-only build, Caffe's runtest skips the GPU cases the same way.
filter=()
[ "${SEPNETS_CUDA:-0}" = 1 ] || filter=(--gtest_filter=-*GPU*)
set +e
(cd "$BUILD_DIR/caffe-src" && "$ROOT/$BUILD_DIR/caffe/test/test.testbin" "${filter[@]}") \
  > "$BUILD_DIR/gtest.log" 2>&1
rc=$?
set -e
grep -E '^\[  FAILED  \]|^\[  PASSED  \]|^\[==========\]' "$BUILD_DIR/gtest.log" | tail -20
if [ $rc != 0 ]; then
  say "Caffe GTest binary failed (exit $rc; log: $BUILD_DIR/gtest.log)"
  exit 1
fi

say "Python tests (pytest)"
export SEPNETS_SHARED_DIR=${SEPNETS_SHARED_DIR:-$(cd "$ROOT/.." && pwd)/shared}
exec "$ROOT/.venv/bin/python" -m pytest -q "$ROOT/tests" "$@"
