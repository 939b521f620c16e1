#!/usr/bin/env bash
# The project's long CPU runs (issues 18 and 19, and SqueezeNet's retry), two queues,
# one per core, from a worktree and Caffe build of their own, so that rebuilding this
# checkout never swaps libcaffe under them. Every experiment continues where it
# stopped: from its own snapshots on the machine it ran on, from the committed resume
# kit on a new one (run_experiment.py --resume-kit auto).
#
#   bash scripts/long_runs.sh start    # worktree + build if missing, data, both queues in the background
#   bash scripts/long_runs.sh status   # the last progress line of each queue
#   bash scripts/long_runs.sh sync     # logs and resume kits into this checkout, tables and figures remade
#   bash scripts/long_runs.sh stop     # SIGTERM: Caffe snapshots, the runner exits (waits for it); `start` continues
#   bash scripts/long_runs.sh list     # the queues: queue, experiment file (options), run folder, experiment
#
# Then commit logs/ and resume/ (tests/test_committed_results.py checks that the
# tables are the logs'). SEPNETS_RUN_WORKTREE (default ../run) names the worktree.
# As root, `start` runs the queues at nice -5 and turns the kernel's autogroup
# scheduling off for the whole machine (/proc/sys/kernel/sched_autogroup_enabled = 0,
# until reboot), so that niced work in other sessions keeps off the runs' cores.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WT=${SEPNETS_RUN_WORKTREE:-$(cd "$ROOT/.." && pwd)/run}
OUT="$WT/long_runs"
say() { printf '[long_runs] %s\n' "$*"; }

# One line a run: the experiment file and its options; each queue runs its lines in order.
QUEUE1=("experiments/resnet56.toml" "experiments/resnet32.toml"
        "experiments/small-nets-squeezenet-linear.toml")
QUEUE2=("experiments/small-nets-sepnet.toml --until 1b_full_bn"
        "experiments/small-nets-mobilenet.toml"
        "experiments/small-nets-squeezenet.toml"
        "experiments/small-nets-sepnet.toml"
        "experiments/resnet44.toml")

shared_dir() {
  if [ -n "${SEPNETS_SHARED_DIR:-}" ]; then echo "$SEPNETS_SHARED_DIR"
  elif [ -d "$ROOT/../shared" ]; then (cd "$ROOT/../shared" && pwd)
  fi
}

# "<file> <run> <experiment>" for each experiment file of the queues, once each: its
# `run` key (default: the file's name), which names logs/<run>/, runs/<run>/ and
# resume/<run>/, and its `experiment` key.
queue_runs() {
  local line files=()
  for line in "${QUEUE1[@]}" "${QUEUE2[@]}"; do files+=("${line%% *}"); done
  python3 - "$ROOT" "${files[@]}" <<'EOF'
import os, sys, tomllib
root, seen = sys.argv[1], set()
for f in sys.argv[2:]:
    if f not in seen:
        seen.add(f)
        with open(os.path.join(root, f), "rb") as fh:
            d = tomllib.load(fh)
        print(f, d.get("run", os.path.splitext(os.path.basename(f))[0]), d["experiment"])
EOF
}

# The run folders that train in the worktree (its runs/<run>/ is there): their logs
# and kits there are newer than any commit; the worktree's other ones are a commit's.
runs_here() {
  local toml run exp
  queue_runs | while read -r toml run exp; do
    if [ -d "$WT/runs/$run" ]; then echo "$run"; fi
  done | sort -u
}

# A queue runs while its script's process exists and is not a zombie (an exited
# process whose parent has not reaped it yet, as `kill -0` would still find it).
alive() {
  local st
  [ -f "$OUT/$1.pid" ] && st=$(ps -o stat= -p "$(cat "$OUT/$1.pid")" 2>/dev/null) &&
    [ -n "$st" ] && [ "${st#Z}" = "$st" ]
}

start_queue() {
  local name=$1; shift
  if alive "$name"; then
    say "$name is running already (pid $(cat "$OUT/$name.pid")): $OUT/$name.out"
    return
  fi
  local script="$OUT/$name.sh" line
  {
    echo "#!/usr/bin/env bash"
    echo "# written by scripts/long_runs.sh: the runs of $name, in order"
    echo "set -e"
    echo "cd '$WT'"
    echo "export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 SEPNETS_SHARED_DIR='$(shared_dir)'"
    for line in "$@"; do
      echo "echo \"=== \$(date -u +%FT%TZ) $line\""
      echo ".venv/bin/python tools/run_experiment.py $line --resume-kit auto"
    done
  } > "$script"
  # A negative nice keeps niced builds and tests on this machine off the runs' cores
  # (root only; with the kernel's autogroups on, nice acts only within a session).
  local nice_level=0
  if [ "$(id -u)" = 0 ]; then nice_level=-5; fi
  nohup nice -n "$nice_level" bash "$script" >> "$OUT/$name.out" 2>&1 &
  echo $! > "$OUT/$name.pid"
  say "$name started (pid $!, nice $nice_level, 1 thread): $OUT/$name.out"
}

# Move the worktree to this checkout's HEAD, keeping the logs and kits of the runs
# that train there (the runs append to them: they are newer than any commit).
move_worktree() {
  local head=$1 keep r d paths=()
  keep=$(mktemp)
  for r in $(runs_here); do
    for d in "logs/$r" "resume/$r"; do
      if [ -d "$WT/$d" ]; then paths+=("$d"); fi
    done
  done
  if [ ${#paths[@]} -gt 0 ]; then
    (cd "$WT" && tar cf "$keep" --exclude=README.md "${paths[@]}")
  fi
  git -C "$WT" checkout -q --detach -f "$head"
  if [ ${#paths[@]} -gt 0 ]; then
    (cd "$WT" && tar xf "$keep")
  fi
  rm -f "$keep"
  say "worktree moved to this checkout's HEAD, the runs' logs and kits kept; if the build"
  say "below rebuilds libcaffe, note the engine change in the runs' READMEs"
}

cmd_start() {
  if [ ! -d "$WT" ]; then
    say "worktree: git worktree add --detach $WT HEAD"
    git -C "$ROOT" worktree add --detach "$WT" HEAD
  fi
  local head
  head=$(git -C "$ROOT" rev-parse HEAD)
  if [ "$(git -C "$WT" rev-parse HEAD)" != "$head" ]; then
    if alive queue1 || alive queue2; then
      say "worktree stays where it is: a queue is running"
    else
      move_worktree "$head"
    fi
  fi
  say "worktree $WT at $(git -C "$WT" log --oneline -1)"
  say "set-up there (its own Caffe build; idempotent): bash scripts/setup.sh"
  (cd "$WT" && SEPNETS_NO_SHELL_HOOK=1 bash scripts/setup.sh)
  mkdir -p "$OUT"
  if [ -w /proc/sys/kernel/sched_autogroup_enabled ]; then
    echo 0 > /proc/sys/kernel/sched_autogroup_enabled
    say "kernel autogroup scheduling off, so that nice levels hold across sessions"
  fi
  if [ ! -d "$WT/data/cifar10" ]; then
    local src
    src="$(shared_dir)/data/cifar10-jpeg.tar.gz"
    say "data: CIFAR-10 version 3 into $WT/data/cifar10 (once, before both queues)"
    if [ -f "$src" ]; then
      (cd "$WT" && .venv/bin/python tools/prepare_cifar10.py --version 3 --source "$src")
    else
      (cd "$WT" && .venv/bin/python tools/prepare_cifar10.py --version 3)
    fi
  fi
  start_queue queue1 "${QUEUE1[@]}"
  start_queue queue2 "${QUEUE2[@]}"
}

cmd_status() {
  local q state
  for q in queue1 queue2; do
    if alive "$q"; then state="running"; else state="not running"; fi
    say "$q ($state): $(grep -E '^\[|^===' "$OUT/$q.out" 2>/dev/null | tail -n 1)"
  done
}

cmd_stop() {
  local q t=0 stopping=()
  for q in queue1 queue2; do
    if alive "$q"; then
      # The queue's runner stops its caffe (which snapshots) on SIGTERM and exits.
      pkill -TERM -P "$(cat "$OUT/$q.pid")" || true
      say "$q: stopping (SIGTERM)"
      stopping+=("$q")
    fi
  done
  # Return once they are gone: a `start` right after must find them stopped (it
  # moves the worktree to this checkout's HEAD only then).
  for q in ${stopping[@]+"${stopping[@]}"}; do
    while alive "$q"; do
      if [ "$t" -ge "${SEPNETS_STOP_WAIT:-300}" ]; then
        say "$q: still running after ${t} s (pid $(cat "$OUT/$q.pid")); see $OUT/$q.out"
        exit 1
      fi
      sleep 1
      t=$((t + 1))
    done
    say "$q: stopped"
  done
}

cmd_sync() {
  if [ ! -d "$WT" ]; then say "no worktree at $WT: nothing to sync"; exit 1; fi
  local here run toml exp state failed=0
  here=$(runs_here)
  # Kits first, then logs: the log parser drops what a resumed run logged after its
  # snapshot, so logs newer than their kit are harmless; a kit newer than its logs is not.
  while read -r toml run exp; do
    state="$WT/runs/$run/$exp/state.json"
    if [ ! -f "$state" ]; then
      say "$toml: not started, no kit"
    elif python3 -c 'import json, sys; sys.exit(not json.load(open(sys.argv[1])).get("finished"))' \
        "$state" 2>/dev/null; then
      say "$toml: finished, no kit needed"
    elif ! (cd "$WT" && .venv/bin/python tools/run_experiment.py "$toml" --resume-kit save \
              | sed 's/^/  /'; exit "${PIPESTATUS[0]}"); then
      failed=1
    fi
  done < <(queue_runs)
  for run in $here; do
    mkdir -p "$ROOT/logs/$run"
    # The run's story (README.md) is written in this checkout, not by the runner. Each
    # log is taken up to its last complete line: caffe may be writing it (a plain
    # copy once cut a number in half, and tar's "file changed" ended the sync).
    "$ROOT/.venv/bin/python" -c 'import sys; from sepnets.fileio import copy_tree_settled
copy_tree_settled(sys.argv[1], sys.argv[2], exclude={"README.md"})' "$WT/logs/$run" "$ROOT/logs/$run"
    rm -rf "$ROOT/resume/$run"
    if [ -d "$WT/resume/$run" ]; then cp -a "$WT/resume/$run" "$ROOT/resume/$run"; fi
    say "logs/$run and resume/$run copied"
  done
  say "tables and figures: tools/parse_logs.py, tools/plot_logs.py"
  (cd "$ROOT" && .venv/bin/python tools/parse_logs.py logs/quick --quiet >/dev/null \
    && .venv/bin/python tools/parse_logs.py logs/ --quiet >/dev/null \
    && .venv/bin/python tools/plot_logs.py logs/ >/dev/null)
  if [ "$failed" != 0 ]; then
    say "a kit was not saved (the error above); its older kit was copied, which still"
    say "resumes (a little further back than the logs); fix the error and sync again"
    exit 1
  fi
  say "now: git add logs resume && git commit"
}

cmd_list() {
  local line toml run exp q=1 queue all
  all=$(queue_runs)
  for queue in QUEUE1 QUEUE2; do
    local -n lines=$queue
    for line in "${lines[@]}"; do
      toml=${line%% *}
      read -r _ run exp < <(grep "^$toml " <<< "$all")
      printf 'queue%s\t%s\t%s\t%s\n' "$q" "$line" "$run" "$exp"
    done
    q=$((q + 1))
  done
}

case "${1:-}" in
  start) cmd_start ;;
  list) cmd_list ;;
  status) cmd_status ;;
  stop) cmd_stop ;;
  sync) cmd_sync ;;
  *) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
