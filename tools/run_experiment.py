#!/usr/bin/env python3
"""Run a SEP-Nets experiment end to end (train, binarize, fine-tune) with the real caffe binary."""
import os
import sys

from sepnets import REPO_ROOT
from sepnets.cli import parser, run
from sepnets.pipeline.config import DEFAULT_SWEEP, QUICK, RunConfig
from sepnets.pipeline.nets import parse_scale
from sepnets.pipeline.run_experiment import (fraction, positive_int, positive_float, step_arg,
                                             steps_arg, sweep_arg, command, parse)


def build_parser():
    p = parser(
        "run_experiment.py",
        "Run one SEP-Nets experiment end to end with the real caffe binary:\n"
        "  1. train the full-precision net              -> logs/<exp>/1_full.log\n"
        "  2. binarize its k x k filters (mean scale and the offset sweep) and\n"
        "     evaluate each with caffe test ('BiPattern') -> 2_bipattern_<scale>.log\n"
        "  3. fine-tune the best one with fixed patterns  -> 3_refined.log\n"
        "  4. optionally (--ste) train the pattern net with the straight-through\n"
        "     estimator from the full-precision model     -> 4_ste.log\n"
        "  5. for SEP-Net (cifar10-sepnet): pack the best pattern model with its 1x1\n"
        "     and FC weights at 8 bits (SEP-Net-BQ), unpack and test it -> 5_bq.log\n"
        "then write logs/<exp>/results.md and training_curves.png. A net without\n"
        "pattern variants (cifar10-mobilenet, cifar10-squeezenet) runs step 1 alone.\n\n"
        "Resumable: killed at any point and started again with the same options, it\n"
        "skips finished steps and continues the interrupted one from its newest\n"
        "snapshot (runs/<exp>/<step>/snap_iter_N). Missing CIFAR-10 data is prepared\n"
        "(from --source, else $SEPNETS_SHARED_DIR/data/cifar10-jpeg.tar.gz, else the\n"
        "official download).\n\n"
        "CIFAR-10 defaults: 8000 + 4000 iterations at batch 128, base_lr 0.1 then 0.01,\n"
        "learning rate x0.1 at 60 % and 80 %, test on the 10,000 test images and\n"
        "snapshot every 500 iterations. ImageNet nets: their solvers' schedule.\n"
        f"--quick: {QUICK['iters']} + {QUICK['finetune_iters']} iterations at batch "
        f"{QUICK['batch']}, test {QUICK['test_iter']} batches of 100 (minutes on 2 cores).",
        ["python tools/run_experiment.py --list",
         "python tools/run_experiment.py cifar10-resnet20 --quick --logs-dir logs/quick "
         "--runs-dir runs/quick",
         "python tools/run_experiment.py experiments/12000-iters-ste6000-m20.toml",
         "python tools/run_experiment.py experiments/resnet56.toml --gpu 0 --resume-kit save",
         "python tools/run_experiment.py experiments/resnet56.toml --resume-kit auto",
         "python tools/run_experiment.py cifar10-resnet20 --iters 8000 --finetune-iters 4000 "
         "--batch 128",
         "python tools/run_experiment.py cifar10-resnet56 --ste --gpu 0",
         "python tools/run_experiment.py cifar10-resnet20 --ste --ste-lr-mult 20",
         "python tools/run_experiment.py experiments/small-nets-sepnet.toml --until 1b_full_bn",
         "python tools/run_experiment.py cifar10-mobilenet --iters 8000  # step 1 alone",
         "python tools/run_experiment.py cifar10-resnet20 --sweep release --finetune-scale mean",
         "python tools/run_experiment.py cifar10-resnet32 --source cifar-10-binary.tar.gz "
         "--data /scratch/data",
         "python tools/run_experiment.py googlenet-3x3 --gpu 0 --data /datasets  "
         "# needs DIR/ilsvrc12/"])
    p.add_argument("name", nargs="?", metavar="NAME|FILE.toml",
                   help="experiment to run (see --list), e.g. cifar10-resnet20, googlenet-3x3, "
                        "sepnet; or an experiment file, e.g. experiments/12000-iters.toml "
                        "(options given here override the file's)")
    p.add_argument("--list", action="store_true", help="list the experiments and exit")
    p.add_argument("--quick", action="store_true",
                   help="a schedule of a few minutes (the README's main job); explicit "
                        "options below override it")
    p.add_argument("--iters", type=positive_int("--iters"), metavar="N",
                   help="full-precision training iterations (CIFAR-10 default 8000)")
    p.add_argument("--finetune-iters", type=positive_int("--finetune-iters"), metavar="N",
                   help="fine-tuning iterations (CIFAR-10 default 4000)")
    p.add_argument("--ste-iters", type=positive_int("--ste-iters"), metavar="N",
                   help="STE training iterations (default: --finetune-iters)")
    p.add_argument("--batch", type=positive_int("--batch"), metavar="N",
                   help="training batch size of every step (CIFAR-10 default 128; ImageNet: "
                        "the prototxt's)")
    p.add_argument("--test-iter", type=positive_int("--test-iter"), metavar="N",
                   help="test batches per evaluation (default: the solver's, i.e. the whole "
                        "test set)")
    p.add_argument("--test-interval", type=positive_int("--test-interval"), metavar="N",
                   help="iterations between tests (CIFAR-10 default 500; lowered to divide "
                        "the step's iterations)")
    p.add_argument("--snapshot", type=positive_int("--snapshot"), metavar="N",
                   help="iterations between snapshots: the most a kill can lose "
                        "(CIFAR-10 default 500, ImageNet 2000)")
    p.add_argument("--display", type=positive_int("--display"), metavar="N",
                   help="iterations between progress lines (CIFAR-10 default 50)")
    p.add_argument("--bn-fraction", type=fraction, metavar="F",
                   help="BatchNorm moving_average_fraction for this run (default: the "
                        "prototxt's, 0.999; --quick: 0.95)")
    p.add_argument("--bn-stats", choices=("reset", "keep"), default="reset",
                   help="BatchNorm running statistics at the start of fine-tuning (and of "
                        "--ste training): reset "
                        "(default; re-estimated from the fine-tuning batches) or keep the "
                        "full-precision ones, as a plain 'caffe train --weights' does")
    p.add_argument("--bn-recalibrate", type=positive_int("--bn-recalibrate"), metavar="N",
                   help="after steps 1, 3 and 4, re-estimate the final models' BatchNorm "
                        "statistics over N training batches (caffe train at base_lr 0; "
                        "weights unchanged) and test them: 1b_full_bn.log, "
                        "3b_refined_bn.log, 4b_ste_bn.log (default: off)")
    p.add_argument("--keep-snapshots", type=int, default=0, metavar="N",
                   help="keep only the N newest snapshots of a step (default 0: keep all)")
    p.add_argument("--sweep", type=sweep_arg, default=DEFAULT_SWEEP,
                   metavar="START:STOP:STEP|release|none",
                   help="offsets evaluated after binarization besides the mean scale "
                        f"(default {DEFAULT_SWEEP}; release: the release's offset only; "
                        "none: mean scale only)")
    p.add_argument("--finetune-scale", type=parse_scale, default="best",
                   metavar="best|mean|X",
                   help="which binarized model to fine-tune (default best: the best "
                        "BiPattern top-1)")
    p.add_argument("--ste", action="store_true",
                   help="also run step 4: STE training of the pattern net")
    p.add_argument("--ste-lr", type=positive_float("--ste-lr"), metavar="LR",
                   help="base_lr of the STE step (default: the fine-tuning solver's, "
                        "0.01 on CIFAR-10)")
    p.add_argument("--ste-lr-mult", type=positive_float("--ste-lr-mult"), metavar="M",
                   help="multiply the lr_mult of the latent pattern weights in the STE "
                        "step by M (default 1): their gradient carries a factor alpha = "
                        "mean|W| (~0.1), so ~10-20 lets the signs move")
    p.add_argument("--gpu", type=int, metavar="N", help="GPU id for caffe (default: CPU)")
    p.add_argument("--data", default=os.path.join(REPO_ROOT, "data"), metavar="DIR",
                   help="folder of the prepared data sets (DIR/cifar10/v3, DIR/ilsvrc12; "
                        "default: the repository's data/)")
    p.add_argument("--source", metavar="CIFAR_SOURCE",
                   help="CIFAR-10 source to prepare missing data from (archive or folder; "
                        "default: $SEPNETS_SHARED_DIR/data/cifar10-jpeg.tar.gz if present, "
                        "else the official download)")
    p.add_argument("--runs-dir", default=os.path.join(REPO_ROOT, "runs"), metavar="DIR",
                   help="snapshots, per-run solvers and state.json (default: runs)")
    p.add_argument("--logs-dir", default=os.path.join(REPO_ROOT, "logs"), metavar="DIR",
                   help="Caffe logs, experiment.json and results (default: logs)")
    p.add_argument("--reuse", metavar="RUN",
                   help="take the finished steps --reuse-steps from the run RUN (beside "
                        "this run's folders: runs/RUN, logs/RUN) instead of training them")
    p.add_argument("--reuse-steps", type=steps_arg, metavar="STEP,...",
                   default=RunConfig.reuse_steps,
                   help="the steps --reuse takes (default 1_full,2_bipattern,3_refined)")
    p.add_argument("--until", type=step_arg, metavar="STEP",
                   help="stop after this step (e.g. 1b_full_bn: train and re-estimate "
                        "the full-precision net, binarize later); the same command "
                        "without --until continues")
    p.add_argument("--resume-kit", choices=("save", "restore", "auto"),
                   help="save: write what this unfinished run needs to resume on another "
                        "machine into resume/<run>/<exp>/ (state, newest complete snapshot, "
                        "models later steps need; safe while the run goes on) and exit; "
                        "restore: first copy that kit back into the runs folder; "
                        "auto: restore only when the runs folder has no state and a kit "
                        "is there, else just run. The kit is removed when the run finishes")
    return p


def main(argv=None):
    return command(parse(build_parser(), argv))


if __name__ == "__main__":
    sys.exit(run(main))
