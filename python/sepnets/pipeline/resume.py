"""The resume kit: what an UNFINISHED run needs to continue on another
machine, in one documented place that can be committed (``runs/`` is not).

``resume/<run>/<experiment>/`` holds

* ``state.json``: the run's state (finished steps, choices, schedule);
* the newest complete snapshot (caffemodel + solverstate) of each started,
  unfinished training step;
* the final model of every finished step (the runner skips a finished step
  only when its model is there, and later steps start from them) and the
  binarized model step 3 fine-tunes;
* ``KIT.json``: every file with its sha1, checked on restore.

``run_experiment.py ... --resume-kit save`` writes it from the run's folder
(safe while the run goes on: only complete snapshots are taken) and exits;
``--resume-kit restore`` copies it back into the run's folder on the new
machine and continues the run; ``--resume-kit auto`` restores only where the
run's folder has no state yet and a kit is there, and otherwise just runs, so
that one command continues a long run on the machine it ran on (from its own,
newer snapshots) and on a new one (from the committed kit). Commit ``logs/<run>/`` with it: the resumed
steps append to their logs. The runner removes the kit when the run
finishes; what the finished run chose and measured is then beside its logs
(``logs/<run>/<experiment>/state.json``).
"""
import hashlib
import json
import os
import shutil

from .. import REPO_ROOT
from ..caffeio.run import shown
from ..caffeio.snapshots import latest_snapshot, snapshot_files
from ..errors import UserError
from ..fileio import atomic_path
from .steps import BY_NAME

KIT_ROOT = os.path.join(REPO_ROOT, "resume")
KIT_FILE = "KIT.json"


def kit_dir(runner):
    return os.path.join(KIT_ROOT, runner.cfg.run_name or "default", runner.exp.name)


def _sha1(path):
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_state(runner):
    try:
        with open(runner.state_path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise UserError(runner.state_path, "no run state: nothing to save (the run has not "
                        "started)") from None
    except (OSError, ValueError) as e:
        raise UserError(runner.state_path, f"unreadable run state ({e})") from None


def kit_files(runner, state):
    """[path] of the files (inside the run's folder) a kit needs."""
    files = []
    for name, st in state.get("steps", {}).items():
        if st.get("reused_from") or name not in BY_NAME:
            continue
        if name == "2_bipattern":
            if st.get("done"):
                files.append(os.path.join(runner.runs, name, f"{st['chosen_label']}.caffemodel"))
            continue
        prefix = os.path.join(runner.runs, name, "snap")
        if st.get("done") and st.get("max_iter"):
            files.append(snapshot_files(prefix, st["max_iter"])[0])
        else:
            snap = latest_snapshot(prefix)
            if snap:
                files += [snap[1], snap[2]]
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise UserError(missing[0], "missing: the run's state needs it, so a kit without it "
                        "could not resume")
    return files


def save(runner):
    """Write the kit from the run's folder; return its folder."""
    state = _read_state(runner)
    if state.get("finished"):
        raise UserError(runner.state_path, "this run is finished: its record is beside its "
                        "logs, no resume kit is needed")
    files = kit_files(runner, state)
    out = kit_dir(runner)
    sums = {}
    with atomic_path(out, is_dir=True) as tmp:
        for f in files:
            rel = os.path.relpath(f, runner.runs)
            os.makedirs(os.path.dirname(os.path.join(tmp, rel)), exist_ok=True)
            shutil.copy2(f, os.path.join(tmp, rel))
            sums[rel] = _sha1(os.path.join(tmp, rel))
        with open(os.path.join(tmp, "state.json"), "w") as fh:
            json.dump(state, fh, indent=2)
            fh.write("\n")
        sums["state.json"] = _sha1(os.path.join(tmp, "state.json"))
        with open(os.path.join(tmp, KIT_FILE), "w") as fh:
            json.dump({"experiment": runner.exp.name, "run": runner.cfg.run_name,
                       "runs": os.path.relpath(runner.runs, REPO_ROOT), "files": sums},
                      fh, indent=2)
            fh.write("\n")
    runner.say(f"resume kit: {len(files)} model/snapshot file(s) and state.json in "
               f"{shown(out)}; commit it with logs/ to continue elsewhere")
    return out


def restore(runner):
    """Copy the kit into the run's folder (after checking every sha1)."""
    src = kit_dir(runner)
    meta_path = os.path.join(src, KIT_FILE)
    try:
        with open(meta_path) as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise UserError(meta_path, "no resume kit here (save one with --resume-kit save)") \
            from None
    except (OSError, ValueError) as e:
        raise UserError(meta_path, f"unreadable resume kit ({e})") from None
    if meta.get("experiment") != runner.exp.name:
        raise UserError(meta_path, f"is a kit of {meta.get('experiment')}, not {runner.exp.name}")
    for rel, sha in meta["files"].items():
        path = os.path.join(src, rel)
        if not os.path.isfile(path) or _sha1(path) != sha:
            raise UserError(path, "missing or changed since the kit was saved (sha1 differs)")
    for rel in meta["files"]:
        dst = os.path.join(runner.runs, rel)
        if os.path.isfile(dst):
            if _sha1(dst) != meta["files"][rel] and rel == "state.json":
                raise UserError(dst, "the run's folder already has another state; move it "
                                "away to restore the kit")
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with atomic_path(dst) as tmp:
            shutil.copy2(os.path.join(src, rel), tmp)
    runner.say(f"resume kit {shown(src)} restored into {shown(runner.runs)}")


def remove_kit(runner):
    """The run finished: its kit is no longer needed."""
    d = kit_dir(runner)
    if os.path.isdir(d):
        shutil.rmtree(d)
        parent = os.path.dirname(d)
        if not os.listdir(parent):
            os.rmdir(parent)
        runner.say(f"resume kit {shown(d)} removed (the run is finished)")


def run_with_kit(runner):
    mode = runner.cfg.resume_kit
    if mode == "save":
        save(runner)
        return 0
    if mode == "restore":
        restore(runner)
    elif runner.finished_elsewhere():
        return 0
    elif os.path.isfile(runner.state_path):
        runner.say(f"resume kit: not needed, {shown(runner.runs)} has the run's state")
    elif os.path.isfile(os.path.join(kit_dir(runner), KIT_FILE)):
        restore(runner)
    else:
        runner.say(f"resume kit: none in {shown(kit_dir(runner))}; the run starts here")
    runner.run()
    return 0

