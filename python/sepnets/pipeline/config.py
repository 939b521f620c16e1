"""A run's configuration, typed: which experiment, the schedule (the numbers
that shape the results, recorded in state.json so that a resumed run cannot
mix two schedules in one table) and where and how it runs.

Why the CIFAR-10 schedule differs from the release's (80k iterations): on a
2-core CPU a ResNet-20 iteration at batch 128 takes seconds, so the default
is 8000 + 4000 iterations with the learning-rate steps at the release's 60 %
and 80 %.
"""
import os
from dataclasses import dataclass, field

from .. import REPO_ROOT
from .nets import read_run_solver

DEFAULT_SWEEP = "0.02:0.09:0.01"

# The CIFAR-10 schedule of this project's real run (see the module docstring);
# ImageNet nets keep their solvers' numbers (None: from the solver/prototxt).
SCHEDULES = {
    "cifar10": dict(iters=8000, finetune_iters=4000, batch=128, snapshot=500,
                    test_interval=500, test_iter=None, display=50),
    "imagenet": dict(iters=None, finetune_iters=None, batch=None, snapshot=2000,
                     test_interval=None, test_iter=None, display=None),
}
# A few minutes on 2 cores: enough for accuracies clearly above chance.
# BatchNorm's running statistics follow the last ~20 batches instead of ~1000
# (0.999): after 600 iterations the default still averages in the first,
# untrained ones, and after binarization those of the full-precision net.
QUICK = dict(iters=600, finetune_iters=200, batch=32, snapshot=50, test_interval=100,
             test_iter=10, display=10, bn_fraction=0.95)
# Schedule fields that change the results: a rerun must use the same.
# (Intervals of tests, snapshots and progress lines may change.) Those that
# only an optional step reads are checked once that step started (its
# `options` in the step table).
RESULT_KEYS = ("iters", "finetune_iters", "ste_iters", "batch", "test_iter", "sweep",
               "finetune_scale", "bn_fraction", "bn_stats", "ste_lr", "ste_lr_mult",
               "bn_recalibrate")
# Schedule fields given on the command line (or in an experiment file) as is.
_SCHEDULE_OPTIONS = ("iters", "finetune_iters", "ste_iters", "batch", "snapshot",
                     "test_interval", "test_iter", "display", "bn_fraction")


@dataclass
class RunConfig:
    """How and where one run goes (everything but the schedule)."""
    name: str = None                  # the experiment, e.g. cifar10-resnet20
    quick: bool = False
    ste: bool = False
    gpu: int = None
    keep_snapshots: int = 0
    data: str = os.path.join(REPO_ROOT, "data")
    source: str = None
    runs_dir: str = os.path.join(REPO_ROOT, "runs")
    logs_dir: str = os.path.join(REPO_ROOT, "logs")
    #: another run (a name under runs/ and logs/, or a runs folder) whose
    #: finished steps `reuse_steps` this run takes instead of training them
    reuse: str = None
    reuse_steps: tuple = ("1_full", "2_bipattern", "3_refined")
    resume_kit: str = None            # save | restore | auto | None
    until: str = None                 # stop after this step (a later run continues)
    toml: str = None                  # the experiment file it came from
    options: dict = field(default_factory=dict)   # the schedule options given

    @classmethod
    def from_args(cls, a):
        names = {f for f in cls.__dataclass_fields__ if f != "options"}
        cfg = cls(**{k: getattr(a, k) for k in names if hasattr(a, k)})
        cfg.options = {k: getattr(a, k, None) for k in _SCHEDULE_OPTIONS + (
            "sweep", "finetune_scale", "bn_stats", "ste_lr", "ste_lr_mult", "bn_recalibrate")}
        return cfg

    @property
    def run_name(self):
        """The run's name: its runs folder relative to runs/ (``resnet56`` for
        ``--runs-dir runs/resnet56``), the folder's name if elsewhere."""
        runs = os.path.abspath(self.runs_dir)
        top = os.path.join(REPO_ROOT, "runs")
        rel = os.path.relpath(runs, top)
        if rel == os.curdir:
            return None
        return rel if not rel.startswith(os.pardir) else os.path.basename(runs)


def schedule(exp, a):
    """The effective schedule: dataset defaults, --quick, explicit options,
    then the catalog's solvers/prototxts for what is still open. `a` is a
    RunConfig or the parsed command line."""
    opts = a.options if isinstance(a, RunConfig) else vars(a)
    s = dict(SCHEDULES[exp.dataset])
    if a.quick:
        s.update(QUICK)
    for k in _SCHEDULE_OPTIONS:
        v = opts.get(k)
        if v is not None:
            s[k] = v
    full = read_run_solver(exp.full.solver)
    fine = read_run_solver(exp.mean.finetune_solver) if exp.mean else None
    s["iters"] = s.get("iters") or full.max_iter
    # an experiment of step 1 alone fine-tunes nothing
    s["finetune_iters"] = s.get("finetune_iters") or (fine.max_iter if fine else 0)
    s["ste_iters"] = s.get("ste_iters") or s["finetune_iters"]
    s["test_iter"] = s.get("test_iter") or (full.test_iter[0] if full.test_iter else 1)
    s["test_interval"] = s.get("test_interval") or full.test_interval or s["iters"]
    s["snapshot"] = s.get("snapshot") or full.snapshot or s["iters"]
    s["display"] = s.get("display") or full.display or 0
    s["sweep"] = opts.get("sweep") or DEFAULT_SWEEP
    s["finetune_scale"] = opts.get("finetune_scale") or "best"
    s["bn_stats"] = opts.get("bn_stats") or "reset"
    s["ste_lr"] = opts.get("ste_lr")
    s["ste_lr_mult"] = opts.get("ste_lr_mult")
    s["bn_recalibrate"] = opts.get("bn_recalibrate")
    return s
