"""Loading the Caffe logs of experiments for the result tables and plots, in the form of
the release README (Full / BiPattern / Refined, top-1 over top-5), so that the
numbers in the project's tables always come from logs of real runs.

Experiment folder layout (written by ``tools/run_experiment.py``)::

    logs/
      RESULTS.md                    all experiments' table (tools/parse_logs.py)
      <experiment>/
        1_full.log                  caffe train, full precision (step 1)
        1b_full_bn.log              optional (--bn-recalibrate): step 1's model with
                                    its BatchNorm statistics re-estimated
        2_bipattern_<what>.log      caffe test right after binarization, one per
                                    scale/offset tried (step 2), e.g.
                                    2_bipattern_mean.log, 2_bipattern_offset0.06.log
        2b_bipattern_bn.log         optional: the chosen binarized model with its
                                    BatchNorm statistics re-estimated
        3_refined.log               caffe train, fine-tuning with fixed patterns (step 3)
        3b_refined_bn.log           optional: the same for step 3's model
        4_ste.log                   optional: caffe train of the pattern net with STE
        4b_ste_bn.log               optional: the same for step 4's model
        experiment.json             optional metadata (see below)
        ste_sign_flips.json         optional: the pattern signs STE changed (step 4;
                                    read by the depth trend, .comparisons)
        csv/<log name>.csv          one CSV per log (tools/parse_logs.py)
        state.json                  optional: the finished run's record (choices)
        results.md                  this experiment's tables (tools/parse_logs.py)

A step's log is found by its prefix (the step table's,
:mod:`sepnets.pipeline.steps`: ``1_``, ``1b_``, ``2_``, ``2b_``, ``3_``, ``3b_``,
``4_``, ``4b_``); logs a run reused from another run are listed in its
experiment.json (``reused_logs``, paths relative to the folder);
other ``*.log`` files are converted to CSV but not tabulated. A step resumed
from a snapshot appends to the same log (the parser handles the restart).

Which number goes into the table:

* Full, Refined, STE and their re-estimated versions: the last test of the
  training log (the test at its last tested iteration; the iteration is
  listed under "Steps");
* BiPattern: the evaluation the runner chose, as it recorded it
  (``experiment.json``'s ``bipattern_log``, else the ``state.json`` the
  finished run left beside its logs); while step 2 is still running, the
  runner's own rule (best top-1, ties: the lower loss); every evaluation is
  listed under "BiPattern evaluations".

Top-1/top-5 outputs are found by name (:func:`sepnets.caffe_log.pick_accuracy`:
``accuracy``, ``top-1``, ``accuracy_top5``, GoogLeNet's ``loss3/top-1`` ...)
unless given with --top1/--top5 or ``experiment.json``.

``experiment.json`` keys read here, all optional: ``reused_logs``; ``model`` (or ``name``): the
label in the Model column (default: the folder name); ``bipattern_log``;
``reference``: ``{"top1": x, "top5": y}`` for a Ref column (the paper's number);
``top1_output``/``top5_output``: output names.
"""
import glob
import json
import math
import os
import sys
from dataclasses import dataclass, field

from ..caffeio.log import parse_log
from ..errors import UserError
from ..fileio import atomic_path
from ..pipeline.nets import MEAN, best_evaluation
from ..pipeline.steps import STEPS, step_of

#: Column titles by step key, from the step table.
TITLES = {s.key: s.title for s in STEPS}
RESULTS_NAME = "results.md"
COMBINED_NAME = "RESULTS.md"
CSV_DIR = "csv"
_BIPATTERN = "2_bipattern"


@dataclass
class StepResult:
    step: str
    path: str
    log: object                    # CaffeLog
    acc: object                    # caffe_log.Accuracy

    @property
    def file(self):
        return os.path.basename(self.path)


@dataclass
class Experiment:
    folder: str
    name: str
    meta: dict
    logs: dict = field(default_factory=dict)        # path -> CaffeLog
    results: dict = field(default_factory=dict)     # step -> StepResult
    bipattern: list = field(default_factory=list)   # every step-2 StepResult
    bipattern_why: str = ""
    warnings: list = field(default_factory=list)    # (path, problem)


def log_files(folder):
    return sorted(glob.glob(os.path.join(glob.escape(folder), "*.log")))


def experiment_folders(path):
    """The experiment folders under `path`: `path` itself if it holds logs,
    else every folder below it that holds step logs (``1_full.log``, ...), at
    any depth, so that runs kept apart (``logs/quick/<exp>``) are found too;
    the shallowest first."""
    if not os.path.exists(path):
        raise UserError(path, "no such folder")
    if not os.path.isdir(path):
        raise UserError(path, "not a folder (give the logs folder or an experiment folder)")
    if log_files(path):
        return [path]
    found = []
    for folder, subs, _ in os.walk(path):
        subs[:] = sorted(d for d in subs if d != CSV_DIR and not d.startswith("."))
        if folder != path and any(step_of(os.path.basename(f)) for f in log_files(folder)):
            found.append(folder)
            subs[:] = []        # an experiment's own sub-folders are not experiments
    if not found:
        raise UserError(path, "no Caffe logs (*.log) in this folder or its experiment "
                        "sub-folders")
    return sorted(found, key=lambda f: (os.path.relpath(f, path).count(os.sep), f))


def load_folders(path, top1=None, top5=None):
    """Every experiment under `path`, parsed; experiments of the same name
    (the same net run twice, e.g. under ``logs/<variant>/``) are told apart by
    the folder they sit in."""
    exps = [load_experiment(f, top1, top5) for f in experiment_folders(path)]
    counts = {}
    for e in exps:
        counts[e.name] = counts.get(e.name, 0) + 1
    for e in exps:
        parent = os.path.dirname(os.path.relpath(e.folder, path))
        if counts[e.name] > 1 and parent and parent != os.curdir:
            e.name = f"{e.name} ({parent})"
    return exps


def read_meta(folder):
    path = os.path.join(folder, "experiment.json")
    if not os.path.isfile(path):
        return {}
    try:
        with open(path) as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(path, f"unreadable experiment metadata ({e})") from None
    if not isinstance(meta, dict):
        raise UserError(path, "experiment metadata is not a JSON object")
    return meta


def reused_log_files(folder, meta):
    """The logs a run took from another run (experiment.json's reused_logs),
    in step order like its own."""
    rel = meta.get("reused_logs") or []
    if not isinstance(rel, list):
        raise UserError(os.path.join(folder, "experiment.json"), "reused_logs is not a list")
    return sorted((os.path.normpath(os.path.join(folder, str(p))) for p in rel),
                  key=os.path.basename)


def load_experiment(folder, top1=None, top5=None):
    """Parse every log of an experiment folder and pick its table's numbers.

    A log without results (e.g. a step that has just started) is a warning,
    not an error, so that the finished steps are still reported.
    """
    meta = read_meta(folder)
    name = str(meta.get("model") or meta.get("name") or
               os.path.basename(os.path.normpath(folder)))
    exp = Experiment(folder=folder, name=name, meta=meta)
    top1 = top1 or meta.get("top1_output")
    top5 = top5 or meta.get("top5_output")
    by_step = {}
    for path in log_files(folder) + reused_log_files(folder, meta):
        try:
            log = parse_log(path)
        except UserError as e:
            exp.warnings.append((path, e.problem))
            continue
        exp.logs[path] = log
        for w in log.warnings:
            exp.warnings.append((path, w))
        key = step_of(os.path.basename(path))
        if key:
            by_step.setdefault(key, []).append(
                StepResult(key, path, log, log.accuracy(top1, top5)))
    for key, found in by_step.items():
        if key == "bipattern":
            continue
        if len(found) > 1:
            exp.warnings.append((folder, f"several {TITLES[key]} logs; the table uses "
                                 f"{found[0].file}"))
        exp.results[key] = found[0]
    exp.bipattern = by_step.get("bipattern", [])
    _choose_bipattern(exp)
    return exp


def _label(result):
    stem = os.path.splitext(result.file)[0]
    return stem[len(_BIPATTERN):].lstrip("_-")


def _recorded_choice(exp):
    """(log file name, why) of the runner's recorded choice, or None."""
    wanted = exp.meta.get("bipattern_log")
    if wanted:
        return os.path.basename(str(wanted)), "chosen in experiment.json"
    path = os.path.join(exp.folder, "state.json")
    if os.path.isfile(path):
        try:
            with open(path) as f:
                st = json.load(f).get("steps", {}).get(_BIPATTERN, {})
        except (OSError, ValueError) as e:
            raise UserError(path, f"unreadable run state ({e})") from None
        if st.get("chosen_label"):
            return f"{_BIPATTERN}_{st['chosen_label']}.log", \
                f"chosen by the runner, state.json: {st.get('rule', 'recorded')}"
    return None


def _choose_bipattern(exp):
    if not exp.bipattern:
        return
    recorded = _recorded_choice(exp)
    if recorded:
        for r in exp.bipattern:
            if r.file == recorded[0]:
                exp.results["bipattern"] = r
                exp.bipattern_why = recorded[1]
                return
        exp.warnings.append((exp.folder, f"the recorded BiPattern choice {recorded[0]} has "
                             "no log; using the best top-1"))
    scored = [r for r in exp.bipattern if _finite(r.acc.top1)]
    if not scored:
        exp.results["bipattern"] = exp.bipattern[0]
        exp.bipattern_why = "no top-1 in any evaluation"
        return
    # the runner's rule, on what the logs say (step 2 still running)
    by_label = {_label(r): r for r in exp.bipattern}
    labels = sorted(by_label, key=lambda x: (x != MEAN, x))
    evals = {k: dict(top1=by_label[k].acc.top1, loss=by_label[k].log.evaluation.loss)
             for k in labels}
    best = best_evaluation(labels, evals)
    exp.results["bipattern"] = by_label[best]
    exp.bipattern_why = (f"best top-1 of {len(exp.bipattern)} evaluations"
                         if len(exp.bipattern) > 1 else "the only evaluation")


def _finite(v):
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def readable(tmp):
    """Give a temporary file from atomic_path (mkstemp: mode 0600) the mode a
    new file normally gets, so that the tables and figures can be shared."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)


def write_text(path, text):
    """Write atomically, with the usual permissions."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)
        readable(tmp)


def csv_path(log_path):
    folder, name = os.path.split(log_path)
    return os.path.join(folder, CSV_DIR, os.path.splitext(name)[0] + ".csv")


def load_all(path, top1=None, top5=None):
    """Experiments under `path`; raise if none of their logs has results."""
    exps = load_folders(path, top1, top5)
    if not any(e.logs for e in exps):
        problems = "; ".join(f"{os.path.basename(p)}: {w}" for e in exps for p, w in e.warnings)
        raise UserError(path, f"no results in any log ({problems})")
    for flag, name in (("--top1", top1), ("--top5", top5)):
        if name:
            _check_output_name(path, exps, flag, name)
    return exps


def _check_output_name(path, exps, flag, name):
    """A --top1/--top5 name that no log reports would fill every table cell
    with "-" and overwrite the results files with it: refuse before writing,
    listing the names the logs do have."""
    have = set()
    for e in exps:
        for log in e.logs.values():
            have.update(log.output_names(0))
    if name not in have:
        raise UserError(path, f"{flag} {name}: no log has a test output of that name "
                        f"(outputs: {', '.join(sorted(have)) or 'none'})")


def warn(prog, exps):
    for e in exps:
        for p, w in e.warnings:
            print(f"{prog}: warning: {p}: {w}", file=sys.stderr)


def add_log_arguments(p):
    """The arguments parse_logs and plot_logs share: where the logs are and
    which test outputs hold the accuracies."""
    p.add_argument("path", nargs="?", default="logs",
                   help="the logs folder (one sub-folder per experiment) or one "
                        "experiment folder (default: logs)")
    p.add_argument("--top1", help="test output holding top-1 accuracy (default: by name)")
    p.add_argument("--top5", help="test output holding top-5 accuracy (default: by name)")
