"""THE table of the procedure's steps. The runner runs the enabled ones in
this order, the result tables make one column of each, the plots draw each
as its kind says; nothing else names a step.

Adding a step is one entry here (its name, title, when it is enabled, how
it runs) plus its test: the runner, ``tools/parse_logs.py`` and
``tools/plot_logs.py`` pick it up from the entry.

Each ``run`` function gets the runner and ``done``, a dict in which the
steps before it left what later steps need (``done["1_full"]``: the full
model; ``done["2_bipattern"]``: the chosen scale; ``done["3_refined"]``, ``done["4_ste"]`` and
the re-estimations ``done["3b_refined_bn"]`` ...: the model and its net and
solver).

Re-estimating the BatchNorm statistics of the binarized model (2b) tells how
much of the drop right after binarizing is the statistics, which binarizing
makes stale, rather than the weights: the release's BiPattern column rises
with depth, ours (mean scale, offset sweep) did not, and the runs' tables
should say which of the two the difference lies in.

Experiments with only a full-precision net (the baselines MobileNet and
SqueezeNet) run step 1 (and 1b) only: the pattern steps are enabled when the
experiment has a pattern net (:func:`_patterns`).
"""
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable

from .nets import scale_label, ste_net


@dataclass(frozen=True)
class Step:
    name: str                 # runs/<exp>/<name>/ and logs/<exp>/<name>*.log
    key: str                  # the result tables' key
    title: str                # the result tables' column
    legend: str               # the plots' legend
    color: str                # the plots' colour
    kind: str                 # plot as: curve (training), markers (evaluations), point
    enabled: Callable         # (runner) -> bool
    run: Callable             # (runner, done) -> None
    optional: bool = False    # a column only when some experiment has the step
    point_of: tuple = None    # kind point: drawn where the first of these steps' curves ends
    options: tuple = ()       # schedule keys that matter once this step started
    uses: tuple = ()          # schedule keys its result depends on (besides earlier steps')
    glossary: tuple = None    # (term, meaning) for the tables' legend; steps may share one

    @property
    def prefix(self):
        """The prefix of the step's log files: ``1_``, ``1b_``, ``2_`` ..."""
        return self.name.split("_", 1)[0] + "_"


def _patterns(r):
    return r.exp.mean is not None


def _reset(r):
    return r.sched.get("bn_stats", "keep") == "reset"


def _full(r, done):
    exp = r.exp
    done["1_full"] = r.train_step("1_full", "full precision", r.catalog_net(exp.full),
                                  exp.full.solver, r.sched["iters"])


def _bipattern(r, done):
    done["2_bipattern"] = r.bipattern_step(done["1_full"])


def _refined(r, done):
    chosen = done["2_bipattern"]
    net, _, solver = r.pattern_setup(chosen)
    label = scale_label(chosen)
    model = r.finished("3_refined")
    if model is None:
        binary = r.bipattern_model(label)
        if _reset(r):
            binary = r.bn_reset_copy("3_refined", binary, label)
        model = r.train_step("3_refined", f"fine-tuning fixed patterns ({label})", net,
                             solver, r.sched["finetune_iters"], weights=binary,
                             test_first=False if _reset(r) else None)
    done["3_refined"] = (model, net, solver)


def _ste(r, done):
    exp = r.exp
    net = ste_net(r.catalog_net(exp.mean), r.catalog_net(exp.full),
                  exp.mean.pattern_layers, r.sched.get("ste_lr_mult") or 1.0)
    model = r.finished("4_ste")
    if model is None:
        start = done["1_full"]
        if _reset(r):
            start = r.bn_reset_copy("4_ste", start, "full")
        model = r.train_step("4_ste", "STE training of the pattern net", net,
                             exp.mean.finetune_solver, r.sched["ste_iters"], weights=start,
                             test_first=False if _reset(r) else None,
                             base_lr=r.sched.get("ste_lr"))
    r.record_sign_flips(done["1_full"], model)
    done["4_ste"] = (model, net, exp.mean.finetune_solver)


def _recalibrate(of):
    def run(r, done):
        step = {"1_full": "1b_full_bn", "2_bipattern": "2b_bipattern_bn",
                "3_refined": "3b_refined_bn", "4_ste": "4b_ste_bn"}[of]
        if of == "1_full":
            model, net, solver = done[of], r.catalog_net(r.exp.full), r.exp.full.solver
        elif of == "2_bipattern":   # the binarized model step 3 fine-tunes, in its net
            chosen = done[of]
            net, _, solver = r.pattern_setup(chosen)
            model = r.bipattern_model(scale_label(chosen))
        else:
            model, net, solver = done[of]
        done[step] = (r.recalibrate_step(step, of, net, solver, model), net, solver)
    return run


def _bq(r, done):
    done["5_bq"] = r.bq_step(done)


def _recalibrating(r):
    return bool(r.sched.get("bn_recalibrate"))


def _ste_on(r):
    return r.ste and _patterns(r)


_BN = ("bn_recalibrate",)
_STE = ("ste_iters", "ste_lr", "ste_lr_mult")

#: The procedure, in order.
STEPS = (
    Step("1_full", "full", "Full", "1: full precision", "C0", "curve",
         enabled=lambda r: True, run=_full,
         uses=("iters", "batch", "test_iter", "bn_fraction"),
         glossary=("Full", "full-precision training")),
    Step("1b_full_bn", "full_bn", "Full, BN re-est.", "1, BatchNorm statistics re-estimated",
         "C0", "point", enabled=_recalibrating, run=_recalibrate("1_full"), optional=True,
         point_of=("full",), options=_BN, uses=_BN),
    Step("2_bipattern", "bipattern", "BiPattern", "2: BiPattern", "C1", "markers",
         enabled=_patterns, run=_bipattern, uses=("sweep", "finetune_scale"),
         glossary=("BiPattern", "right after binarization")),
    Step("2b_bipattern_bn", "bipattern_bn", "BiPattern, BN re-est.",
         "2, BatchNorm statistics re-estimated", "C1", "point",
         enabled=lambda r: _patterns(r) and _recalibrating(r),
         run=_recalibrate("2_bipattern"), optional=True, point_of=("full",), options=_BN,
         uses=_BN),
    Step("3_refined", "refined", "Refined", "3: refined (fixed patterns)", "C2", "curve",
         enabled=_patterns, run=_refined, uses=("finetune_iters", "bn_stats"),
         glossary=("Refined", "after fine-tuning with fixed patterns")),
    Step("3b_refined_bn", "refined_bn", "Refined, BN re-est.",
         "3, BatchNorm statistics re-estimated", "C2", "point",
         enabled=lambda r: _patterns(r) and _recalibrating(r),
         run=_recalibrate("3_refined"), optional=True, point_of=("refined",), options=_BN, uses=_BN),
    Step("4_ste", "ste", "STE", "4: STE", "C3", "curve", enabled=_ste_on,
         run=_ste, optional=True, options=_STE, uses=_STE + ("bn_stats",),
         glossary=("STE", "the pattern net trained with the straight-through estimator")),
    Step("4b_ste_bn", "ste_bn", "STE, BN re-est.", "4, BatchNorm statistics re-estimated",
         "C3", "point", enabled=lambda r: _ste_on(r) and _recalibrating(r),
         run=_recalibrate("4_ste"), optional=True, point_of=("ste",), options=_BN, uses=_BN,
         glossary=("BN re-est.", "that model with its BatchNorm statistics re-estimated, "
                   "weights unchanged")),
    Step("5_bq", "bq", "BQ", "5: BQ (1x1 and FC at 8 bits)", "C4", "point",
         enabled=lambda r: _patterns(r) and r.exp.bq is not None, run=_bq, optional=True,
         point_of=("ste", "refined"),
         glossary=("BQ", "the best pattern model packed with its 1x1 and FC weights at 8 bits "
                   "(SEP-Net-BQ), unpacked and tested")),
)
BY_NAME = {s.name: s for s in STEPS}
BY_KEY = {s.key: s for s in STEPS}


def optional_step_keys():
    """{schedule key: (steps that read it)} for the keys of optional steps."""
    out = {}
    for s in STEPS:
        for k in s.options:
            out.setdefault(k, ())
            out[k] += (s.name,)
    return out


def possible_steps(patterns=True):
    """The steps an experiment can run with every option on: all of them for a
    net with a pattern variant, steps 1 and 1b for one without (the
    baselines). Asked of the steps' own ``enabled`` rules (with a stand-in
    runner), so that the result tables know which schedule keys an
    experiment's results can depend on (their ``uses``) without a second
    list of the rules."""
    net = object() if patterns else None
    probe = SimpleNamespace(exp=SimpleNamespace(mean=net, bq=net), ste=True,
                            sched={"bn_recalibrate": 1, "bn_stats": "reset"})
    return tuple(s for s in STEPS if s.enabled(probe))


def step_of(filename):
    """The key of the step whose log `filename` is, or None."""
    for s in STEPS:
        if filename.startswith(s.prefix):
            return s.key
    return None
