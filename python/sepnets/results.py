"""From the Caffe logs of one experiment to its result table, in the form of
the release README (Full / BiPattern / Refined, top-1 over top-5), so that the
numbers in the project's tables always come from logs of real runs.

Experiment folder layout (written by ``tools/run_experiment.py``)::

    logs/
      RESULTS.md                    all experiments' table (written here)
      <experiment>/
        1_full.log                  caffe train, full precision (step 1)
        1b_full_bn.log              optional (--bn-recalibrate): step 1's model with
                                    its BatchNorm statistics re-estimated
        2_bipattern_<what>.log      caffe test right after binarization, one per
                                    scale/offset tried (step 2), e.g.
                                    2_bipattern_mean.log, 2_bipattern_offset0.06.log
        3_refined.log               caffe train, fine-tuning with fixed patterns (step 3)
        3b_refined_bn.log           optional: the same for step 3's model
        4_ste.log                   optional: caffe train of the pattern net with STE
        4b_ste_bn.log               optional: the same for step 4's model
        experiment.json             optional metadata (see below)
        csv/<log name>.csv          one CSV per log (written here)
        results.md                  this experiment's tables (written here)

A step's log is found by its prefix (``1_``, ``1b_``, ``2_``, ``3_``, ``3b_``, ``4_``,
``4b_``);
other ``*.log`` files are converted to CSV but not tabulated. A step resumed
from a snapshot appends to the same log (the parser handles the restart).

Which number goes into the table:

* Full, Refined, STE and their re-estimated versions: the last test of the
  training log (the test at its last tested iteration; the iteration is
  listed under "Steps");
* BiPattern: the evaluation named by ``experiment.json``'s ``bipattern_log``,
  else the one with the best top-1 (the release tuned its offset that way);
  every evaluation is listed under "BiPattern evaluations".

Top-1/top-5 outputs are found by name (:func:`sepnets.caffe_log.pick_accuracy`:
``accuracy``, ``top-1``, ``accuracy_top5``, GoogLeNet's ``loss3/top-1`` ...)
unless given with --top1/--top5 or ``experiment.json``.

``experiment.json`` keys read here, all optional: ``model`` (or ``name``): the
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

from .caffe_log import csv_text, parse_log
from .errors import UserError
from .fileio import atomic_path, refuse_overwrite

#: (key, file prefix, column title), in the order of the procedure.
STEPS = (("full", "1_", "Full"), ("full_bn", "1b_", "Full, BN re-est."),
         ("bipattern", "2_", "BiPattern"),
         ("refined", "3_", "Refined"), ("refined_bn", "3b_", "Refined, BN re-est."),
         ("ste", "4_", "STE"), ("ste_bn", "4b_", "STE, BN re-est."))
#: Columns shown only when some experiment has them.
OPTIONAL = ("full_bn", "refined_bn", "ste", "ste_bn")
TITLES = {k: t for k, _, t in STEPS}
RESULTS_NAME = "results.md"
COMBINED_NAME = "RESULTS.md"
CSV_DIR = "csv"


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


def step_of(filename):
    for key, prefix, _ in STEPS:
        if filename.startswith(prefix):
            return key
    return None


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
    for path in log_files(folder):
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


def _choose_bipattern(exp):
    if not exp.bipattern:
        return
    wanted = exp.meta.get("bipattern_log")
    if wanted:
        for r in exp.bipattern:
            if r.file == os.path.basename(str(wanted)):
                exp.results["bipattern"] = r
                exp.bipattern_why = "chosen in experiment.json"
                return
        exp.warnings.append((os.path.join(exp.folder, "experiment.json"),
                             f"bipattern_log {wanted} not found; using the best top-1"))
    scored = [r for r in exp.bipattern if _finite(r.acc.top1)]
    if not scored:
        exp.results["bipattern"] = exp.bipattern[0]
        exp.bipattern_why = "no top-1 in any evaluation"
        return
    best = max(scored, key=lambda r: r.acc.top1)     # first of equals (sorted names)
    exp.results["bipattern"] = best
    exp.bipattern_why = (f"best top-1 of {len(exp.bipattern)} evaluations"
                         if len(exp.bipattern) > 1 else "the only evaluation")


def _finite(v):
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _num(v, digits=4):
    if v is None:
        return "-"
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return f"{v:.{digits}f}"


def _cell(top1, top5, digits):
    return f"{_num(top1, digits)} <br /> {_num(top5, digits)}"


def _duration(sec):
    if sec is None or not math.isfinite(sec):
        return "-"
    if sec < 60:
        return f"{sec:.1f} s"
    sec = int(round(sec))
    return f"{sec // 3600}:{sec // 60 % 60:02d}:{sec % 60:02d}"


def table(experiments, digits=4):
    """The release README's table: one row per experiment."""
    steps = [k for k, _, _ in STEPS
             if k not in OPTIONAL or any(k in e.results for e in experiments)]
    with_ref = any(isinstance(e.meta.get("reference"), dict) for e in experiments)
    head = ["Model", "Acc"] + (["Ref"] if with_ref else []) + [TITLES[k] for k in steps]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for e in experiments:
        cells = [_md(e.name), "Top 1 <br /> Top 5"]
        if with_ref:
            ref = e.meta.get("reference") if isinstance(e.meta.get("reference"), dict) else {}
            cells.append(_cell(ref.get("top1"), ref.get("top5"), digits))
        for k in steps:
            r = e.results.get(k)
            cell = _cell(r.acc.top1, r.acc.top5, digits) if r else "- <br /> -"
            if r and r.log.kind != "test" and not r.log.complete:
                cell += f" <br /> (unfinished, iteration {r.acc.iteration})"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _md(text):
    return str(text).replace("|", "\\|")


def _done(log):
    if log.kind == "test":
        ev = log.evaluation
        if ev.complete:
            return "yes"
        return f"partial ({ev.batches} of {ev.iterations or '?'} batches)"
    if log.complete:
        return "yes"
    if log.stopped_early:
        return "stopped early"
    return "no (log ends here)"


def _source(r):
    if r.log.kind == "test":
        return f"`{r.file}`"
    return f"`{r.file}` at iteration {r.acc.iteration}" if r.acc.iteration is not None \
        else f"`{r.file}` (no test yet)"


def experiment_markdown(exp, digits=4):
    """results.md of one experiment: the table, where each number comes from,
    and the state of every step."""
    out = [f"# {exp.name}", "",
           "Generated by `tools/parse_logs.py` from the Caffe logs in this folder; "
           "CSV files of the logs are in `csv/`.", "", table([exp], digits)]
    notes = []
    for k, _, title in STEPS:
        r = exp.results.get(k)
        if r is None:
            continue
        note = f"- {title}: {_source(r)}"
        if k == "bipattern":
            note += f" ({exp.bipattern_why})"
        notes.append(note)
    names = sorted({(r.acc.top1_name, r.acc.top5_name) for r in exp.results.values()},
                   key=str)
    for n1, n5 in names:
        notes.append(f"- test outputs used: top-1 `{n1 or 'none found'}`, "
                     f"top-5 `{n5 or 'none found'}`")
    out += notes + [""]
    out += ["## Steps", "",
            "| Step | Log | Last iteration | Done | Runs | Wall-clock | Top 1 | Top 5 |",
            "|---|---|---|---|---|---|---|---|"]
    for k, _, title in STEPS:
        r = exp.results.get(k)
        if r is None:
            continue
        log = r.log
        last = f"{log.evaluation.batches} batches" if log.kind == "test" \
            else log.last_iteration
        runs = max(log.segments, 1)
        out.append(f"| {title} | `{r.file}` | {last if last is not None else '-'} | "
                   f"{_done(log)} | {runs} | {_duration(log.seconds)} | "
                   f"{_num(r.acc.top1, digits)} | {_num(r.acc.top5, digits)} |")
    out.append("")
    if exp.bipattern:
        out += ["## BiPattern evaluations", "",
                "| Log | Batches | Done | Loss | Top 1 | Top 5 | In table |",
                "|---|---|---|---|---|---|---|"]
        chosen = exp.results.get("bipattern")
        for r in exp.bipattern:
            ev = r.log.evaluation
            out.append(f"| `{r.file}` | {ev.batches} | {_done(r.log)} | "
                       f"{_num(ev.loss, digits)} | {_num(r.acc.top1, digits)} | "
                       f"{_num(r.acc.top5, digits)} | {'yes' if r is chosen else ''} |")
        out.append("")
    if exp.warnings:
        out += ["## Warnings", ""]
        out += [f"- `{os.path.relpath(p, exp.folder)}`: {_md(w)}" for p, w in exp.warnings]
        out.append("")
    return "\n".join(out)


def combined_markdown(experiments, root, digits=4):
    links = ", ".join(f"[{_md(e.name)}]({os.path.relpath(e.folder, root)}/{RESULTS_NAME})"
                      for e in experiments)
    return ("# Results\n\nGenerated by `tools/parse_logs.py` from the Caffe logs under "
            "this folder. Full: full-precision training; BiPattern: right after "
            "binarization; Refined: after fine-tuning with fixed patterns; STE: the "
            "pattern net trained with the straight-through estimator; BN re-est.: that "
            "model with its BatchNorm statistics re-estimated, weights unchanged. Each "
            "cell: top-1 over top-5 test accuracy.\n\n" + table(experiments, digits) +
            f"\nDetails (which log, iteration, wall-clock): {links}.\n")


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


def write_experiment(exp, digits=4):
    """Write the CSV of every parsed log and results.md; return the paths."""
    written = []
    for path, log in exp.logs.items():
        out = csv_path(path)
        refuse_overwrite(out, path)
        write_text(out, csv_text(log))
        written.append(out)
    out = os.path.join(exp.folder, RESULTS_NAME)
    write_text(out, experiment_markdown(exp, digits))
    written.append(out)
    return written


def load_all(path, top1=None, top5=None):
    """Experiments under `path`; raise if none of their logs has results."""
    exps = load_folders(path, top1, top5)
    if not any(e.logs for e in exps):
        problems = "; ".join(f"{os.path.basename(p)}: {w}" for e in exps for p, w in e.warnings)
        raise UserError(path, f"no results in any log ({problems})")
    return exps


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


def main(argv=None):
    from .cli import parser
    p = parser("parse_logs.py",
               "Turn the Caffe logs of experiments into CSV files and result tables\n"
               "(Full / BiPattern / Refined, top-1 and top-5) in the release README's form:\n"
               "<exp>/csv/<log>.csv, <exp>/results.md and, for a folder of experiments,\n"
               "RESULTS.md beside them. The tables are printed too. Experiment folder\n"
               "layout: 1_full.log, 2_bipattern*.log, 3_refined.log, 4_ste.log (optional),\n"
               "experiment.json (optional); see python/sepnets/results.py.",
               ["python tools/parse_logs.py logs/",
                "python tools/parse_logs.py logs/cifar10-resnet20",
                "python tools/parse_logs.py logs/ --top1 loss3/top-1 --top5 loss3/top-5"])
    add_log_arguments(p)
    p.add_argument("--digits", type=int, default=4, help="decimals in the tables (default 4)")
    p.add_argument("--quiet", action="store_true", help="do not print the tables")
    a = p.parse_args(argv)
    exps = load_all(a.path, a.top1, a.top5)
    warn("parse_logs.py", exps)
    written = []
    for e in exps:
        if e.logs:
            written += write_experiment(e, a.digits)
    is_root = not log_files(a.path)
    if is_root:
        out = os.path.join(a.path, COMBINED_NAME)
        write_text(out, combined_markdown(exps, a.path, a.digits))
        written.append(out)
    if not a.quiet:
        for e in exps:
            if e.logs:
                print(experiment_markdown(e, a.digits))
        if is_root:
            print(f"# All experiments ({COMBINED_NAME})\n\n" + table(exps, a.digits))
    n_csv = sum(1 for w in written if w.endswith(".csv"))
    print(f"wrote {n_csv} CSV file(s) and "
          + ", ".join(os.path.relpath(w) for w in written if w.endswith(".md")))
    return 0
