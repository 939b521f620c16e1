"""Step 2 in the runner: binarize the full-precision model with the mean
scale and each offset of the sweep, evaluate each with ``caffe test`` right
away, and record in state.json which one step 3 fine-tunes (the best top-1,
ties: the lower loss), as the release tuned its offset on the validation
data. The result tables read the choice back from there.
"""
import os

from ..caffeio.log import parse_log
from ..caffeio.proto import read_caffemodel, write_message, write_model
from ..caffeio.run import caffe_path, from_caffe_path, shown
from ..caffeio.snapshots import model_is_complete
from ..errors import UserError
from .nets import MEAN, choose_scale, scale_from, scale_label

STEP = "2_bipattern"
RULE_BEST = "best top-1 after binarization (ties: lower loss)"


def _num(v):
    return "-" if v is None else f"{v:.4f}"


def eval_complete(path):
    """The ``caffe test`` log exists and logged its final summary."""
    if not os.path.isfile(path):
        return False
    try:
        log = parse_log(path)
    except UserError:
        return False
    return log.kind == "test" and log.evaluation is not None and log.evaluation.complete


class BiPatternMixin:
    def pattern_setup(self, scale):
        """(net, pattern layers, fine-tune solver) for a scale."""
        exp = self.exp
        if scale == MEAN:
            return self.catalog_net(exp.mean), list(exp.mean.pattern_layers), \
                exp.mean.finetune_solver
        if exp.fix is not None:
            return self.catalog_net(exp.fix), list(exp.fix.pattern_layers), \
                exp.fix.finetune_solver
        from ..compress.binarize import pattern_net
        layers = list(exp.mean.pattern_layers)
        return pattern_net(self.catalog_net(exp.full), layers, scale), layers, \
            exp.mean.finetune_solver

    def candidates(self):
        spec = self.sched["sweep"]
        if spec == "none":
            offsets = []
        elif spec == "release":
            offsets = [self.exp.release_offset] if self.exp.release_offset else []
        else:
            from ..compress.binarize import parse_sweep
            offsets = parse_sweep(spec)
        scales = [MEAN] + offsets
        fs = self.sched["finetune_scale"]
        if fs not in ("best", MEAN) and fs not in scales:
            scales.append(fs)
        return scales

    def bipattern_model(self, label):
        """The binarized model of `label`, as step 2 recorded it (this run's
        or, reused, another run's)."""
        ev = self.state["steps"].get(STEP, {}).get("evaluations", {}).get(label)
        if ev and ev.get("model"):
            return from_caffe_path(ev["model"])
        return os.path.join(self.runs, STEP, f"{label}.caffemodel")

    def bipattern_step(self, full_model):
        """Binarize with each scale, evaluate each with caffe test; return the chosen scale."""
        from ..compress.binarize import pattern_model
        st = self.step_state(STEP)
        d = os.path.join(self.runs, STEP)
        if st.get("done") and (st.get("reused_from") or os.path.isfile(
                os.path.join(d, f"{st['chosen_label']}.caffemodel"))):
            how = f"reused from {st['reused_from']}" if st.get("reused_from") else "done earlier"
            self.say(f"[{STEP}] {how}: fine-tuning {st['chosen_label']}")
            return scale_from(st["chosen"])
        os.makedirs(d, exist_ok=True)
        st["status"] = "running"
        evals = st.setdefault("evaluations", {})
        model = None
        scales = self.candidates()
        self.say(f"[{STEP}] binarizing {shown(full_model)} with "
                 + ", ".join(scale_label(s) for s in scales) + "; caffe test on "
                 f"{self.sched['test_iter']} batches each")
        for scale in scales:
            label = scale_label(scale)
            net, layers, _ = self.pattern_setup(scale)
            proto = os.path.join(d, f"{label}.prototxt")
            weights = os.path.join(d, f"{label}.caffemodel")
            log_path = os.path.join(self.logs, f"2_bipattern_{label}.log")
            write_message(proto, net, f"{self.exp.name}, BiPattern {label}: net")
            if not (model_is_complete(weights) and eval_complete(log_path)):
                if model is None:
                    model = read_caffemodel(full_model)
                have = {layer.name for layer in model.layer if layer.blobs}
                lost = [n for n in layers if n not in have]
                if lost:
                    raise UserError(full_model, f"has no weights for pattern layer '{lost[0]}'")
                write_model(weights, pattern_model(model, net, layers, scale))
                acc, ev, took = self.caffe_test(proto, weights, log_path)
                took = f", {took:.1f} s"
            else:
                log = parse_log(log_path)
                acc, ev, took = log.accuracy(), log.evaluation, ", done earlier"
            evals[label] = dict(scale=scale, log=os.path.basename(log_path),
                                model=caffe_path(weights), top1=acc.top1, top5=acc.top5,
                                loss=ev.loss, batches=ev.batches)
            self.save_state()
            self.say(f"[{STEP}] {label:>11}: top-1 {_num(acc.top1)}  top-5 {_num(acc.top5)}  "
                     f"loss {_num(ev.loss)}  ({ev.batches} batches{took})")
        chosen = choose_scale(scales, evals, self.sched["finetune_scale"])
        label = scale_label(chosen)
        st.update(status="done", done=True, chosen=chosen, chosen_label=label,
                  rule=(RULE_BEST if self.sched["finetune_scale"] == "best"
                        else "--finetune-scale"))
        self.save_state()
        self.write_meta(bipattern_log=f"2_bipattern_{label}.log", finetuned_scale=label)
        self.say(f"[{STEP}] fine-tuning {label} ({st['rule']})")
        self.write_results(quiet=True)
        return chosen
