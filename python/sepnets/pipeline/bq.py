"""Step 5 in the runner: SEP-Net-BQ, the paper's smallest variant, made the
way it would be shipped: the best pattern model of the run is packed into a
``.sepnet`` file with its 1 x 1 convolution and FC weights at 8 bits
(``tools/pack_model.py pack --bq``: per-tensor affine uint8; patterns at one
bit and a scale per filter), that file is unpacked into a caffemodel (the
8-bit weights baked into the stock layers) and evaluated with ``caffe test``.
So the accuracy in the table is that of the very file whose size the table
reports, not of a simulation of it.

Which model: the best top-1 of the pattern models the run trained (fine-tuned
with fixed patterns, STE, and their BatchNorm re-estimations), read from their
logs' last tests; ties go to the earlier step of the procedure. The choice,
the file and its size are recorded in state.json (``5_bq``) and
experiment.json (``bq_from``, ``bq_bytes``).
"""
import math
import os

from ..caffeio.log import parse_log
from ..caffeio.proto import read_caffemodel, write_message, write_model
from ..caffeio.run import caffe_path, shown
from ..errors import UserError
from ..fileio import write_bytes_atomic
from .bipattern import eval_complete

STEP = "5_bq"
#: The pattern models step 5 chooses among, in the procedure's order.
SOURCES = ("3_refined", "3b_refined_bn", "4_ste", "4b_ste_bn")
PACKED = "bq.sepnet"


def best_of(top1s):
    """The index of the best top-1 in `top1s` (one per pattern model, in the
    procedure's order; None or NaN where there is none), ties to the earlier
    one; None when none counts. The one rule for "the best pattern model":
    step 5 packs it and the depth table's gap names it."""
    scored = [(v, -i) for i, v in enumerate(top1s) if v is not None and math.isfinite(v)]
    return -max(scored)[1] if scored else None


def best_source(done, logs):
    """(step, model, net) of the best top-1 among the finished pattern steps
    in `done` (their logs in `logs`); ties: the earlier step."""
    steps = [s for s in SOURCES if s in done]
    logs_of = [os.path.join(logs, f"{s}.log") for s in steps]
    i = best_of([parse_log(p).accuracy().top1 if os.path.isfile(p) else None for p in logs_of])
    return None if i is None else (steps[i], *done[steps[i]][:2])


class BQMixin:
    def bq_step(self, done):
        """Pack the best pattern model with 8-bit 1x1/FC weights, unpack it,
        ``caffe test`` it; return the packed file's path."""
        from ..compress.pack_model import pack, unpack
        st = self.step_state(STEP)
        d = os.path.join(self.runs, STEP)
        log_path = os.path.join(self.logs, f"{STEP}.log")
        packed = os.path.join(d, PACKED)
        if st.get("done") and eval_complete(log_path) and os.path.isfile(packed):
            self.say(f"[{STEP}] done earlier: {shown(packed)}")
            return packed
        src = best_source(done, self.logs)
        if src is None:
            raise UserError(self.logs, "step 5 (BQ) found no tested pattern model to quantize "
                                       "(steps 3/4 have no test result)")
        step, model_path, net = src
        os.makedirs(d, exist_ok=True)
        proto = os.path.join(d, "net.prototxt")
        weights = os.path.join(d, "bq.caffemodel")
        write_message(proto, net, f"{self.exp.name}, BQ from {step}: net")
        self.say(f"[{STEP}] packing {shown(model_path)} (from {step}, the best pattern model) "
                 "with 1x1 and FC weights at 8 bits")
        data = pack(net, read_caffemodel(model_path), proto, model_path, bq=True)
        write_bytes_atomic(packed, data)
        write_model(weights, unpack(net, data, proto, packed))
        st.update(status="running", source=step, source_model=caffe_path(model_path),
                  packed=caffe_path(packed), packed_bytes=len(data))
        self.save_state()
        acc, ev, took = self.caffe_test(proto, weights, log_path)
        st.update(status="done", done=True, model=caffe_path(weights), top1=acc.top1,
                  top5=acc.top5, loss=ev.loss)
        self.save_state()
        self.write_meta(bq_from=step, bq_bytes=len(data))
        self.say(f"[{STEP}] {len(data):,} bytes ({shown(packed)}): top-1 {acc.top1:.4f}  "
                 f"top-5 {acc.top5:.4f}  ({ev.batches} batches, {took:.1f} s)")
        self.write_results(quiet=True)
        return packed
