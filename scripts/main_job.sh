#!/usr/bin/env bash
# The main job: set-up (idempotent), a quick end-to-end SEP-Nets run on real
# CIFAR-10 (ResNet-20: train full precision, binarize, fine-tune fixed patterns,
# all with the real caffe binary), then its result table and training curves.
#   bash scripts/main_job.sh
# Minutes on 2 CPU cores; started again it skips what is done and continues an
# interrupted step from its last snapshot. Its logs go to logs/quick/ so that
# they never mix with the real run's logs in logs/.
# Environment:
#   SEPNETS_SHARED_DIR   shared data folder (default: ../shared beside the repo);
#                        CIFAR-10 is prepared from its data/cifar10-jpeg.tar.gz
#                        when data/cifar10/v3 is missing
#   SEPNETS_SKIP_SETUP=1 skip scripts/setup.sh (Caffe already built)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
say() { printf '[main-job] %s\n' "$*"; }

if [ -z "${SEPNETS_SHARED_DIR:-}" ] && [ -d "$ROOT/../shared" ]; then
  SEPNETS_SHARED_DIR=$(cd "$ROOT/../shared" && pwd)
fi
export SEPNETS_SHARED_DIR=${SEPNETS_SHARED_DIR:-}

if [ "${SEPNETS_SKIP_SETUP:-0}" != 1 ]; then
  say "set-up: bash scripts/setup.sh"
  bash scripts/setup.sh
fi
PY="$ROOT/.venv/bin/python"
LOGS=logs/quick
RUNS=runs/quick

start=$(date +%s)
# experiments/quick.toml: cifar10-resnet20 --quick in runs/quick and logs/quick
say "quick run: python tools/run_experiment.py experiments/quick.toml"
"$PY" tools/run_experiment.py experiments/quick.toml
# The tools read one level of experiment folders: point them at logs/quick.
say "tables: python tools/parse_logs.py $LOGS/"
"$PY" tools/parse_logs.py "$LOGS/" --quiet
say "plots: python tools/plot_logs.py $LOGS/"
"$PY" tools/plot_logs.py "$LOGS/"
# logs/RESULTS.md lists every run's logs, this one's too: keep it what they give
# (tests/test_committed_results.py checks that).
say "the repository's table of all runs: python tools/parse_logs.py logs/"
"$PY" tools/parse_logs.py logs/ --quiet
say "done in $(( $(date +%s) - start )) s (after set-up)"
say "result table: $LOGS/RESULTS.md and $LOGS/cifar10-resnet20/results.md"
say "training curves: $LOGS/cifar10-resnet20/training_curves.png"
say "Caffe logs: $LOGS/cifar10-resnet20/*.log (snapshots in $RUNS/cifar10-resnet20/)"
