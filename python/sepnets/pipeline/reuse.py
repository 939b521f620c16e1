"""Reusing another run's finished steps instead of copying its folders.

``reuse = "12000-iters"`` (an experiment file) or ``--reuse 12000-iters``
makes this run take steps 1-3 (``reuse_steps``) from the run of that name:
its state (``runs/12000-iters/<exp>/state.json``, else the record the
finished run left beside its logs, ``logs/12000-iters/<exp>/state.json``),
its final models and its logs. The steps are recorded in this run's
state.json with ``reused_from``; the logs are listed in its experiment.json
(``reused_logs``), so the result tables and plots show them without a
copy. Names are looked up beside this run's folders (the parents of
--runs-dir and --logs-dir).

The other run must have used the same schedule for everything the reused
steps depend on (the step table's ``uses``), or the table would mix two
schedules; a difference is one clear error.
"""
import json
import os

from ..caffeio.run import caffe_path, from_caffe_path
from ..errors import UserError
from .steps import BY_NAME, STEPS


def _other(runner):
    name = runner.cfg.reuse
    exp = runner.exp.name
    runs = os.path.join(os.path.dirname(os.path.abspath(runner.cfg.runs_dir)), name, exp)
    logs = os.path.join(os.path.dirname(os.path.abspath(runner.cfg.logs_dir)), name, exp)
    for path in (os.path.join(runs, "state.json"), os.path.join(logs, "state.json")):
        if os.path.isfile(path):
            try:
                with open(path) as f:
                    return path, logs, json.load(f)
            except (OSError, ValueError) as e:
                raise UserError(path, f"unreadable run state ({e})") from None
    raise UserError(os.path.join(runs, "state.json"), f"not found (nor {caffe_path(logs)}/"
                    f"state.json): --reuse {name} needs that run's state; run it first")


def take_steps(runner):
    """Record the reused steps in the runner's state (before anything runs)."""
    steps = runner.state["steps"]
    wanted = [s for s in runner.cfg.reuse_steps if not steps.get(s, {}).get("done")]
    if not wanted:
        return
    unknown = [s for s in wanted if s not in BY_NAME]
    if unknown:
        raise UserError("reuse_steps", f"unknown step '{unknown[0]}'; steps: "
                        + ", ".join(BY_NAME))
    path, logs, other = _other(runner)
    if other.get("experiment") != runner.exp.name:
        raise UserError(path, f"is a run of {other.get('experiment')}, not {runner.exp.name}")
    last = max(STEPS.index(BY_NAME[s]) for s in wanted)
    keys = [k for s in STEPS[:last + 1] if s.name in wanted or s.name in ("1_full",)
            for k in s.uses]
    theirs = other.get("schedule", {})
    for k in dict.fromkeys(keys):
        if theirs.get(k) != runner.sched.get(k):
            raise UserError(path, f"was run with {k} = {theirs.get(k)}, not "
                            f"{runner.sched.get(k)}: its steps cannot be reused here")
    for s in wanted:
        st = other.get("steps", {}).get(s, {})
        if not st.get("done"):
            raise UserError(path, f"step {s} is not finished there; it cannot be reused")
        # a step that run itself reused keeps pointing at the run that made it
        steps[s] = dict(st, reused_from=runner.cfg.reuse,
                        reused_logs=st.get("reused_logs") or caffe_path(logs))
    # keep the procedure's order in state.json
    runner.state["steps"] = {n: steps[n] for n in
                             [x.name for x in STEPS if x.name in steps] +
                             [n for n in steps if n not in BY_NAME]}


def reused_logs(runner):
    """Paths (relative to this run's logs folder) of the reused steps' logs."""
    out = []
    for name, st in runner.state["steps"].items():
        if not st.get("reused_from"):
            continue
        logs = from_caffe_path(st["reused_logs"])
        files = [st["log"]] if st.get("log") else []
        files += [ev["log"] for ev in st.get("evaluations", {}).values() if ev.get("log")]
        out += [os.path.relpath(os.path.join(logs, f), runner.logs) for f in files]
    return out
