"""The paper-form comparisons (depth trend, small networks) on hand-made
experiment folders: which runs are chosen (one schedule), the release's and
the paper's rows, the gap arithmetic, unfinished steps, the BQ row from
5_bq.log and experiment.json, sizes and parameters checked against
compress.model_summary, and the figures (written, or not when there is
nothing to plot)."""
import copy
import json
import os
import re
import subprocess
import sys

import pytest

from sepnets.report import comparisons as cmp
from sepnets.report import comparison_figures as figs
from sepnets.report import paper, results
from test_parse_logs import eval_log, train_log

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG = b"\x89PNG\r\n\x1a\n"

#: The schedule of the ResNet-20/56 headline runs, as the runner records it.
HEADLINE = {"iters": 12000, "finetune_iters": 4000, "batch": 128, "snapshot": 500,
            "test_interval": 500, "test_iter": 100, "display": 50, "ste_iters": 6000,
            "sweep": "0.02:0.09:0.01", "finetune_scale": "best", "bn_stats": "reset",
            "ste_lr": None, "ste_lr_mult": 20.0, "bn_recalibrate": 200}


def _sched(**change):
    s = copy.deepcopy(HEADLINE)
    s.update(change)
    return s


def _train(top1, top5=0.99, done=True, last=40):
    text = train_log({0: (0.1, 0.5), last: (top1, top5)}, {0: 2.0, last: 0.5}, done=done)
    return text if done else text[:-20]


def _eval(top1, top5=0.99, cut=False):
    return eval_log({"accuracy": top1, "accuracy_top5": top5}, cut=cut)


def _experiment(root, run, name, full_net, schedule, logs, **meta):
    d = root / run / name
    d.mkdir(parents=True)
    for fname, text in logs.items():
        (d / fname).write_text(text)
    (d / "experiment.json").write_text(json.dumps(dict(
        model=meta.pop("model", name), name=name, full_net=full_net, schedule=schedule,
        **meta)))
    return d


def _resnet(root, run, depth, schedule, full=0.85, refined=0.80, ste_bn=0.83, done=True,
            **meta):
    logs = {"1_full.log": _train(full, done=done)}
    if done:
        logs.update({"2_bipattern_mean.log": _eval(0.15, 0.55),
                     "3_refined.log": _train(refined),
                     "4_ste.log": _train(ste_bn - 0.01),
                     "4b_ste_bn.log": _eval(ste_bn)})
    return _experiment(root, run, f"cifar10-resnet{depth}", f"cifar10-resnet{depth}",
                       schedule, logs, model=f"ResNet-{depth}",
                       reference=paper.REFERENCE.get(f"cifar10-resnet{depth}"), **meta)


@pytest.fixture
def logs(tmp_path):
    """ResNet-20 and ResNet-56 (unfinished) of the headline schedule; a second
    ResNet-20 run with another STE schedule; a quick run."""
    root = tmp_path / "logs"
    _resnet(root, "headline", 20, _sched())
    _resnet(root, "resnet56", 56, _sched(), full=0.45, done=False)
    _resnet(root, "ste8000", 20, _sched(ste_iters=8000), full=0.9, refined=0.5)
    _resnet(root, "quick", 20, _sched(iters=600, batch=32), full=0.4, quick=True)
    return root


def _load(root):
    return results.load_folders(str(root))


def _tool(name, *args):
    return subprocess.run([sys.executable, os.path.join(REPO, "tools", name), *map(str, args)],
                          capture_output=True, text=True, timeout=300)


# ------------------------------------------------------------ selection

def test_one_schedule_the_one_covering_most_depths(logs):
    g = cmp.depth_group(_load(logs))
    assert sorted(g.members) == [20, 56]
    assert g.members[20].folder.endswith(os.path.join("headline", "cifar10-resnet20"))
    assert g.members[56].folder.endswith(os.path.join("resnet56", "cifar10-resnet56"))
    assert g.schedule["ste_iters"] == 6000 and "snapshot" not in g.schedule
    # the quick run (a smoke run) is in no comparison, not even among the others
    assert [os.path.basename(os.path.dirname(e.folder)) for e in g.others] == ["ste8000"]


def test_quick_runs_make_no_comparison(tmp_path):
    """A folder of quick runs only (the main job's logs/quick/) gets its
    per-run tables but no depth trend: 600 iterations against the
    release's 80,000 says nothing about depth."""
    root = tmp_path / "logs"
    _resnet(root, "quick", 20, _sched(iters=600, batch=32), full=0.4, quick=True)
    out = _tool("parse_logs.py", root, "--quiet")
    assert out.returncode == 0, out.stderr
    assert "no depth trend: no experiment of a cifar10-resnet<depth> net with a recorded " \
        "schedule (quick runs left out)" in out.stdout
    assert "## Depth trend" not in (root / "RESULTS.md").read_text()
    assert "0.4000" in (root / "RESULTS.md").read_text()


def test_ties_go_to_more_iterations(tmp_path):
    root = tmp_path / "logs"
    _resnet(root, "a-short", 20, _sched(iters=8000))
    _resnet(root, "b-long", 20, _sched(iters=16000))
    g = cmp.depth_group(_load(root))
    assert list(g.members) == [20]
    assert "b-long" in g.members[20].folder and g.schedule["iters"] == 16000
    # a snapshot interval is no schedule difference: same group, the run with more steps
    _resnet(root, "c-same", 20, _sched(iters=16000, snapshot=100), done=False)
    g = cmp.depth_group(_load(root))
    assert "b-long" in g.members[20].folder
    assert {os.path.basename(os.path.dirname(e.folder)) for e in g.others} == \
        {"a-short", "c-same"}


def test_baselines_join_the_schedule_of_their_step_1(tmp_path):
    """MobileNet runs step 1 alone: the STE keys of its schedule (recorded
    though unused) do not split it from SEP-Net's run; its step 1 keys do."""
    root = tmp_path / "logs"
    small = _sched(iters=8000)
    _experiment(root, "small-nets", "cifar10-sepnet", "cifar10-sepnet-r", small,
                {"1_full.log": _train(0.8)})
    _experiment(root, "small-nets", "cifar10-mobilenet", "cifar10-mobilenet",
                _sched(iters=8000, ste_iters=4000, ste_lr_mult=None),
                {"1_full.log": _train(0.7)})
    _experiment(root, "other", "cifar10-squeezenet", "cifar10-squeezenet",
                _sched(iters=4000, ste_iters=4000), {"1_full.log": _train(0.6)})
    g = cmp.small_group(_load(root))
    assert set(g.members) == {"cifar10-sepnet", "cifar10-mobilenet"}
    assert [os.path.basename(e.folder) for e in g.others] == ["cifar10-squeezenet"]
    assert g.schedule["ste_iters"] == 6000       # the widest schedule: SEP-Net's


def test_possible_steps_of_a_baseline():
    from sepnets.pipeline.steps import STEPS, possible_steps
    assert [s.name for s in possible_steps(False)] == ["1_full", "1b_full_bn"]
    assert possible_steps(True) == STEPS


# ------------------------------------------------------------ depth trend

def test_depth_table_release_rows_gaps_and_unfinished(logs):
    g = cmp.depth_group(_load(logs))
    t = cmp.depth_table(g, str(logs))
    lines = t.splitlines()
    assert lines[0].startswith("| Model | Acc | Ref | Full | BiPattern | Refined | STE | "
                               "STE, BN re-est. | Full - Refined (points) | "
                               "Full - best pattern model (points) |")
    for depth, r in paper.RELEASE_CIFAR10.items():
        row = next(ln for ln in lines if ln.startswith(f"| ResNet-{depth} (release README) |"))
        assert f"| {r.ref:.4f} <br /> - | {r.full[0]:.4f} <br /> {r.full[1]:.4f} | " in row
        assert row.endswith(f"| {100 * (r.full[0] - r.refined[0]):.2f} | "
                            f"{100 * (r.full[0] - r.refined[0]):.2f} (Refined) |")
    assert "| 4.69 | 4.69 (Refined) |" in t           # ResNet-20: 0.9118 - 0.8649
    ours = [ln for ln in lines if "(this project" in ln]
    assert len(ours) == 2 and "headline" in ours[0] and "resnet56" in ours[1]
    # 0.85 - 0.80 and 0.85 - 0.83 (STE, BN re-est., the best pattern model)
    assert ours[0].endswith("| 5.00 | 2.00 (STE, BN re-est.) |")
    assert "| 0.4500 <br /> 0.9900 <br /> (unfinished, iteration 40) |" in ours[1]
    assert ours[1].endswith("| - <br /> - | - <br /> - | - | - |")
    # the release's rows come before ours at each depth
    assert lines.index(ours[0]) == 1 + lines.index(
        next(ln for ln in lines if ln.startswith("| ResNet-20 (release")))


def test_depth_table_carries_the_sign_flips_a_run_kept(logs):
    """The share of pattern signs STE changed is a column where some depth's
    run kept its record (ste_sign_flips.json); '-' elsewhere, and no column
    at all without one (the test above)."""
    from sepnets.compress.compare_patterns import RECORD
    d = logs / "headline" / "cifar10-resnet20"
    (d / RECORD).write_text(json.dumps({"binary_weights": 1000, "binary_flipped": 98,
                                        "binary_fraction": 0.098, "binary_layers": 18}))
    lines = cmp.depth_table(cmp.depth_group(_load(logs)), str(logs)).splitlines()
    assert lines[0].endswith("| Signs STE changed (% of pattern weights) |")
    ours = [ln for ln in lines if "(this project" in ln]
    assert ours[0].endswith("| 2.00 (STE, BN re-est.) | 9.80 |")
    assert ours[1].endswith("| - | - | - |")
    assert all(ln.endswith("(Refined) | - |") for ln in lines if "(release README)" in ln)
    (d / RECORD).write_text("[]")
    with pytest.raises(Exception) as e:
        cmp.depth_table(cmp.depth_group(_load(logs)), str(logs))
    assert RECORD in str(e.value) and "not a sign-flip record" in str(e.value)


def test_depth_reading_waits_for_two_finished_depths(logs):
    text = cmp.depth_reading(cmp.depth_group(_load(logs)))
    assert text.startswith("**Reading**: not yet: the trend needs steps 1 and 3 finished at "
                           "two depths or more (finished: ResNet-20).")
    # 0.9118 - 0.85; ResNet-56's Full is unfinished: not compared
    assert "Our Full is below the release's by ResNet-20 6.18 points of top-1" in text
    assert "ResNet-56" not in text
    assert "**Reading**: not yet" in cmp.depth_section(cmp.depth_group(_load(logs)), str(logs))


@pytest.mark.parametrize("refined56, ours", [
    (0.88, "falls with depth here (ResNet-20 5.00, ResNet-56 2.00 points); in the release "
           "it does too (ResNet-20 4.69, ResNet-56 0.73)."),
    (0.84, "rises with depth here (ResNet-20 5.00, ResNet-56 6.00 points); in the release "
           "it falls (ResNet-20 4.69, ResNet-56 0.73)."),
])
def test_depth_reading_states_the_trend(tmp_path, refined56, ours):
    root = tmp_path / "logs"
    _resnet(root, "r", 20, _sched(), full=0.85, refined=0.80, ste_bn=0.83)
    _resnet(root, "r", 56, _sched(), full=0.90, refined=refined56, ste_bn=0.89)
    text = cmp.depth_reading(cmp.depth_group(_load(root)))
    assert text.startswith("**Reading**: Full - Refined (fixed patterns) " + ours), text
    assert ("Full - best pattern model falls with depth (ResNet-20 2.00 (STE, BN re-est.), "
            "ResNet-56 1.00 (STE, BN re-est.)).") in text
    assert "below the release's by ResNet-20 6.18, ResNet-56 3.75 points" in text


def test_depth_reading_sets_best_pattern_models_like_for_like(tmp_path):
    """ResNet-56's STE still running: its fixed-pattern model must not be set
    against ResNet-20's STE model (that read "rises with depth" from 2.00 vs
    6.00 here); the best is taken among the steps finished at both depths."""
    root = tmp_path / "logs"
    _resnet(root, "r", 20, _sched(), full=0.85, refined=0.80, ste_bn=0.83)
    d56 = _resnet(root, "r", 56, _sched(), full=0.90, refined=0.84)
    (d56 / "4_ste.log").write_text(_train(0.86, done=False))
    (d56 / "4b_ste_bn.log").unlink()
    text = cmp.depth_reading(cmp.depth_group(_load(root)))
    assert "rises with depth here (ResNet-20 5.00, ResNet-56 6.00 points)" in text, text
    assert "Full - best pattern model" not in text, text
    # with a second finished step at both depths the best is among those two
    (d56 / "4_ste.log").write_text(_train(0.88))
    text = cmp.depth_reading(cmp.depth_group(_load(root)))
    assert ("Full - best pattern model falls with depth (ResNet-20 3.00 (STE), ResNet-56 "
            "2.00 (STE)); STE, BN re-est. not yet finished at every depth, so left out.") \
        in text, text


def test_depth_reading_says_what_bn_statistics_give_back_after_binarizing(tmp_path):
    """BiPattern beside the release's; where 2b finished, its top-1 and the
    points it recovers of those binarizing took (ResNet-56: 0.85 - 0.15 = 70
    points lost, 0.60 - 0.15 = 45 back); a 2b still being written says
    nothing, and the figure draws only the finished one."""
    root = tmp_path / "logs"
    d20 = _resnet(root, "r", 20, _sched())
    d56 = _resnet(root, "r", 56, _sched(), full=0.85)
    (d56 / "2b_bipattern_bn.log").write_text(_train(0.60))
    (d20 / "2b_bipattern_bn.log").write_text(_train(0.50, done=False))
    g = cmp.depth_group(_load(root))
    text = cmp.depth_reading(g)
    assert (" Right after binarizing (BiPattern top-1): ResNet-20 0.1500, ResNet-56 0.1500 "
            "(the release: ResNet-20 0.1546, ResNet-56 0.5382). With the BatchNorm statistics "
            "of those binarized weights re-estimated (2b, weights unchanged): ResNet-56 "
            "0.6000, 45.00 of the 70.00 points binarizing took.") in text, text
    s, _ = figs.depth_series(g)
    assert s["bipattern_bn"] == [(56, 0.60)]
    assert "| BiPattern, BN re-est. |" in cmp.depth_table(g, str(root))


def test_gap_of_an_unfinished_step_is_marked(tmp_path):
    root = tmp_path / "logs"
    d = _resnet(root, "r", 20, _sched())
    (d / "3_refined.log").write_text(_train(0.7, done=False))
    g = cmp.depth_group(_load(root))
    gap = cmp.gap(g.members[20], "refined")
    assert gap.points == pytest.approx(15.0) and not gap.finished
    row = [ln for ln in cmp.depth_table(g, str(root)).splitlines() if "this project" in ln][0]
    assert row.endswith("| 15.00 (unfinished) | 2.00 (STE, BN re-est.) |")


def test_parse_logs_writes_the_sections(logs):
    out = _tool("parse_logs.py", logs, "--quiet")
    assert out.returncode == 0, out.stderr
    text = (logs / "RESULTS.md").read_text()
    assert "\n## Depth trend: ResNet-20, ResNet-56 on CIFAR-10, 12,000 full-precision " \
           "iterations\n" in text
    assert "ste_iters 6000" in text and "ste_lr_mult 20," in text
    assert "[ste8000/cifar10-resnet20](ste8000/cifar10-resnet20/results.md)" in text
    assert "## Small networks" not in text
    assert "no small-network comparison: no cifar10-sepnet, cifar10-mobilenet, " \
           "cifar10-squeezenet, cifar10-squeezenet-linear experiment" in out.stdout
    before = {p: p.read_bytes() for p in logs.rglob("*") if p.is_file()}
    assert _tool("parse_logs.py", logs, "--quiet").returncode == 0
    assert {p: p.read_bytes() for p in logs.rglob("*") if p.is_file()} == before
    # one experiment folder: no RESULTS.md, no comparison, no line about it
    one = _tool("parse_logs.py", logs / "headline" / "cifar10-resnet20")
    assert one.returncode == 0 and "Depth trend" not in one.stdout
    assert "no small-network" not in one.stdout and "no depth trend" not in one.stdout


def test_no_resnet_no_depth_trend(tmp_path):
    root = tmp_path / "logs"
    _experiment(root, "x", "googlenet-3x3", "googlenet", _sched(), {"1_full.log": _train(0.5)})
    out = _tool("parse_logs.py", root, "--quiet")
    assert out.returncode == 0, out.stderr
    assert "no depth trend: no experiment of a cifar10-resnet<depth> net" in out.stdout
    assert "## Depth trend" not in (root / "RESULTS.md").read_text()
    out = _tool("plot_logs.py", root, "--dpi", "30")
    assert out.returncode == 0, out.stderr
    assert f"no {cmp.DEPTH_FIGURE}:" in out.stdout and f"no {cmp.SMALL_FIGURE}:" in out.stdout
    assert not (root / cmp.DEPTH_FIGURE).exists() and not (root / cmp.SMALL_FIGURE).exists()


# ------------------------------------------------------------ the paper's numbers

def test_release_and_paper_numbers_are_paper_notes(shared_dir):
    """The numbers quoted as theirs are those of PAPER_NOTES section 4."""
    notes = open(os.path.join(shared_dir, "reference", "PAPER_NOTES.md")).read()
    for d, r in paper.RELEASE_CIFAR10.items():
        assert (f"| ResNet-{d} | {r.ref:.4f} | {r.full[0]:.4f} / {r.full[1]:.4f} | "
                f"{r.bipattern[0]:.4f} / {r.bipattern[1]:.4f} | "
                f"{r.refined[0]:.4f} / {r.refined[1]:.4f} |") in notes
    rows = re.findall(r"^\| (SEP-Net-\w+|MobileNet|SqueezeNet)[^|]*\| ([^|]+)\| ([^|]+)\| "
                      r"([\d.]+) % \|$", notes, re.M)
    assert len(rows) == 5
    for (name, params, size, top1), p in zip(rows, paper.PAPER_SMALL.values()):
        assert p.name.startswith(name)
        assert (params.strip() == "-") == (p.params_m is None)
        if p.params_m:
            assert params.strip() == f"{p.params_m:g} M"
        assert size.strip() == f"{p.size_mb:g} MB" and float(top1) == p.top1_pct
    from sepnets.compress.model_summary import PAPER_SIZES_MB
    assert PAPER_SIZES_MB == {n: p.size_mb for n, p in paper.PAPER_SMALL.items()}


def test_small_rows_name_the_catalog():
    from sepnets.netgen.catalog import CIFAR10_SMALL, SQUEEZENET_LINEAR
    from sepnets.pipeline.catalog import experiments
    assert {r.net for r in cmp.SMALL_ROWS} == set(CIFAR10_SMALL) | {SQUEEZENET_LINEAR}
    assert set(cmp.SMALL_EXPERIMENTS) <= set(experiments())
    assert {r.paper for r in cmp.SMALL_ROWS} == set(paper.PAPER_SMALL)


# ------------------------------------------------------------ small networks

@pytest.fixture
def small_logs(logs):
    """The small nets' run next to the ResNets: SEP-Net with every step and
    step 5 (BQ), MobileNet (step 1 unfinished), no SqueezeNet."""
    sched = _sched(iters=8000, snapshot=100)
    _experiment(logs, "small-nets", "cifar10-sepnet", "cifar10-sepnet-r", sched, {
        "1_full.log": _train(0.82), "1b_full_bn.log": _eval(0.83),
        "2_bipattern_mean.log": _eval(0.2, 0.6),
        "3_refined.log": _train(0.71), "4_ste.log": _train(0.75),
        "4b_ste_bn.log": _eval(0.77), "5_bq.log": _eval(0.765, 0.985)},
        model="SEP-Net", bq_from="4b_ste_bn", bq_bytes=346913)
    _experiment(logs, "small-nets", "cifar10-mobilenet", "cifar10-mobilenet",
                _sched(iters=8000, ste_iters=4000, ste_lr_mult=None),
                {"1_full.log": _train(0.69, done=False)}, model="MobileNet 0.5")
    return logs


def _label(cell):
    """A table's first cell without its link: '[text](path)' -> 'text'."""
    cell = cell.strip()
    return cell[1:cell.index("](")] if cell.startswith("[") else cell


def _rows(text):
    return {_label(ln.split("|")[1]): [c.strip() for c in ln.split("|")[2:-1]]
            for ln in text.splitlines() if ln.startswith("| ") and "---" not in ln}


def test_small_net_table(small_logs):
    out = _tool("parse_logs.py", small_logs, "--quiet")
    assert out.returncode == 0, out.stderr
    text = (small_logs / "RESULTS.md").read_text()
    section = text[text.index("## Small networks"):]
    assert "iters 8000" in section.splitlines()[2]
    rows = _rows(section)
    assert list(rows)[1:] == ["SEP-Net-R (full precision)", "SEP-Net-B (fixed patterns)",
                              "SEP-Net-B (STE, BN re-est.)", "SEP-Net-BQ", "MobileNet 0.5",
                              "SqueezeNet", "ResNet-20 (reference)", "ResNet-56 (reference)"]
    acc = {k: v[3] for k, v in rows.items()}
    assert acc["SEP-Net-R (full precision)"] == "0.8200 <br /> 0.9900"
    assert acc["SEP-Net-B (fixed patterns)"] == "0.7100 <br /> 0.9900"
    assert acc["SEP-Net-B (STE, BN re-est.)"] == "0.7700 <br /> 0.9900"
    assert acc["SEP-Net-BQ"] == "0.7650 <br /> 0.9850"            # 5_bq.log
    assert rows["SEP-Net-BQ"][-1] == \
        "step 5: the STE, BN re-est. model packed, .sepnet file 346,913 bytes"
    assert acc["MobileNet 0.5"] == "0.6900 <br /> 0.9900 <br /> (unfinished, iteration 40)"
    assert acc["SqueezeNet"] == "- <br /> -" and rows["SqueezeNet"][-1].startswith("not run")
    assert acc["ResNet-20 (reference)"] == "0.8500 <br /> 0.9900"
    assert rows["SEP-Net-R (full precision)"][5:8] == ["1.3 M", "5.2", "65.8 %"]
    assert rows["SEP-Net-BQ"][5:8] == ["-", "1.3", "63.5 %"]
    assert rows["SqueezeNet"][5:8] == ["1.2 M", "4.8", "60.4 %"]
    assert rows["ResNet-56 (reference)"][5:8] == ["-", "-", "-"]
    # the same models tested with re-estimated BatchNorm statistics, where a step did it
    bn = {k: v[4] for k, v in rows.items()}
    assert bn["SEP-Net-R (full precision)"] == "0.8300 <br /> 0.9900"   # 1b_full_bn.log
    assert bn["SEP-Net-B (fixed patterns)"] == "- <br /> -"             # no 3b log here
    assert bn["SEP-Net-B (STE, BN re-est.)"] == "n/a" and bn["SEP-Net-BQ"] == "n/a"
    assert bn["ResNet-20 (reference)"] == "- <br /> -"


def test_small_table_carries_the_linear_squeezenet_once_it_has_a_log(small_logs):
    """The retry of SqueezeNet without the ReLU on its class scores is a row
    of its own after SqueezeNet's, priced as its own catalog entry (the same
    parameters), and read against SEP-Net-R; absent, it has no row at all
    (test_small_net_table)."""
    _experiment(small_logs, "small-nets", "cifar10-squeezenet-linear",
                "cifar10-squeezenet-linear", _sched(iters=8000, snapshot=100),
                {"1_full.log": _train(0.74)}, model="SqueezeNet, no ReLU on class scores")
    out = _tool("parse_logs.py", small_logs, "--quiet")
    assert out.returncode == 0, out.stderr
    text = (small_logs / "RESULTS.md").read_text()
    section = text[text.index("## Small networks"):]
    rows = _rows(section)
    labels = list(rows)
    assert labels.index("SqueezeNet, no ReLU on class scores") == labels.index("SqueezeNet") + 1
    row = rows["SqueezeNet, no ReLU on class scores"]
    assert row[3] == "0.7400 <br /> 0.9900" and row[0] == "0.732 M"
    assert row[-1] == "Full of cifar10-squeezenet-linear"
    assert ("SEP-Net-R beats SqueezeNet, no ReLU on class scores: 0.8200 against 0.7400 "
            "top-1 (-8.00 points for SqueezeNet, no ReLU on class scores)") in section


def test_small_reading(small_logs, tmp_path):
    """From finished logs only: MobileNet (unfinished) and SqueezeNet (not
    run) are named as waiting, SEP-Net-B/BQ's losses against SEP-Net-R are
    stated with their sizes; with MobileNet finished, the verdict on it."""
    g = cmp.small_group(_load(small_logs))
    points = cmp.small_points(g, cmp.depth_group(_load(small_logs)))
    from sepnets.compress.model_summary import Cost
    costs = {p.net: Cost(p2, b, 1) for p, p2, b in
             zip(points, (800_000, 800_000, 800_000, 800_000, 800_000, 700_000, 1, 1),
                 (3_330_000, 910_000, 910_000, 350_000, 3_340_000, 2_950_000, 1, 1))}
    text = cmp.small_reading(points, costs)
    assert text.startswith("**Reading**: SEP-Net-B (fixed patterns) keeps 0.7100 (11.00 points "
                           "below SEP-Net-R) at 0.91 MB against SEP-Net-R's 3.33 MB; "
                           "SEP-Net-B (STE, BN re-est.) keeps 0.7700 (6.00 points below "
                           "SEP-Net-R with its BatchNorm statistics re-estimated too (0.8300)) "
                           "at 0.91 MB"), text
    # BQ was packed from 4b_ste_bn: also set against SEP-Net-R's re-estimated test
    assert ("SEP-Net-BQ keeps 0.7650 (6.50 points below SEP-Net-R with its BatchNorm "
            "statistics re-estimated too (0.8300)) at 0.35 MB") in text
    assert "Not finished or not run yet: MobileNet 0.5, SqueezeNet." in text
    assert "beats" not in text and "(The paper, ImageNet top-1: SEP-Net-R 65.8 %" in text
    mob = small_logs / "small-nets" / "cifar10-mobilenet" / "1_full.log"
    mob.write_text(_train(0.84))
    points = cmp.small_points(cmp.small_group(_load(small_logs)), None)
    text = cmp.small_reading(points, costs)
    assert ("SEP-Net-R does not beat MobileNet 0.5: 0.8200 against 0.8400 top-1 (+2.00 points "
            "for MobileNet 0.5) with 1.00x its parameters") in text
    assert "BatchNorm statistics re-estimated:" not in text   # MobileNet has no 1b log yet
    mob.write_text(_train(0.80))
    (mob.parent / "1b_full_bn.log").write_text(_train(0.805))
    text = cmp.small_reading(cmp.small_points(cmp.small_group(_load(small_logs)), None), costs)
    assert "SEP-Net-R beats MobileNet 0.5: 0.8200 against 0.8000 top-1 (-2.00 points" in text
    # both nets' 1b: the same comparison with re-estimated BatchNorm statistics
    assert "; BatchNorm statistics re-estimated: 0.8300 against 0.8050 (-2.50 points)." in text
    assert "Not finished or not run yet: SqueezeNet." in text


def test_small_reading_says_above_when_a_pattern_model_beats_sepnet_r(small_logs):
    """A pattern model better than SEP-Net-R reads "above", not "-0.50 points
    below"; without SEP-Net-R's re-estimated test it is set against step 1."""
    run = small_logs / "small-nets" / "cifar10-sepnet"
    (run / "4b_ste_bn.log").write_text(_eval(0.835))
    points = cmp.small_points(cmp.small_group(_load(small_logs)), None)
    text = cmp.small_reading(points, {})
    assert ("SEP-Net-B (STE, BN re-est.) keeps 0.8350 (0.50 points above SEP-Net-R with its "
            "BatchNorm statistics re-estimated too (0.8300))") in text
    (run / "1b_full_bn.log").unlink()
    points = cmp.small_points(cmp.small_group(_load(small_logs)), None)
    text = cmp.small_reading(points, {})
    assert "SEP-Net-B (STE, BN re-est.) keeps 0.8350 (1.50 points above SEP-Net-R);" in text
    assert "SEP-Net-B (fixed patterns) keeps 0.7100 (11.00 points below SEP-Net-R);" in text


def test_small_net_sizes_and_params_are_model_summarys(small_logs):
    """The parameter and size columns are compress.model_summary's catalog
    summaries of the five CIFAR-10 entries (and the ResNets'); multiply-adds
    are netgen.params' on the deploy prototxts."""
    from sepnets import REPO_ROOT
    from sepnets.compress.model_summary import catalog_summaries
    from sepnets.netgen.params import multiply_adds
    exps = _load(small_logs)
    text = cmp.small_section(cmp.small_group(exps), cmp.depth_group(exps), str(small_logs))
    rows = _rows(text)
    want = {row: (e, s) for row, e, s in catalog_summaries()}
    checked = set()
    for point in cmp.small_points(cmp.small_group(exps), cmp.depth_group(exps)):
        e, s = want[point.net]
        cells = rows[point.label]
        assert cells[0] == f"{s.counts['total'] / 1e6:.3f} M", point.label
        assert cells[1] == f"{s.nbytes / 1e6:.2f}", point.label
        assert cells[2] == f"{multiply_adds(os.path.join(REPO_ROOT, e.deploy)) / 1e6:.1f} M"
        checked.add(point.net)
    assert checked >= {"cifar10-sepnet-r", "cifar10-sepnet-b", "cifar10-sepnet-bq",
                       "cifar10-mobilenet", "cifar10-squeezenet"}
    # the counts the generator documents (netgen/baselines.py, docs/networks.md): the
    # three nets matched in parameters as the paper matched them
    counts = {p.net: want[p.net][1].counts["total"]
              for p in cmp.small_points(cmp.small_group(exps), cmp.depth_group(exps))}
    assert (counts["cifar10-sepnet-r"], counts["cifar10-mobilenet"],
            counts["cifar10-squeezenet"]) == (823_754, 823_722, 732_010)
    # SEP-Net-B stores 1-bit patterns, BQ also 8-bit 1x1/FC: smaller in that order
    size = {k: float(v[1]) for k, v in rows.items() if k.startswith("SEP-Net")}
    assert size["SEP-Net-BQ"] < size["SEP-Net-B (fixed patterns)"] < \
        size["SEP-Net-R (full precision)"]


# ------------------------------------------------------------ figures

def test_figures_written(small_logs):
    out = _tool("plot_logs.py", small_logs, "--dpi", "40")
    assert out.returncode == 0, out.stderr
    for name in (cmp.DEPTH_FIGURE, cmp.SMALL_FIGURE):
        png = small_logs / name
        assert png.read_bytes()[:8] == PNG, name
        assert f"wrote {os.path.relpath(png)}\n" in out.stdout
    assert not [p for p in small_logs.rglob(".*")]
    # one experiment folder: its own figure only
    one = _tool("plot_logs.py", small_logs / "small-nets" / "cifar10-sepnet", "--dpi", "30")
    assert one.returncode == 0 and "depth_trend" not in one.stdout


def test_depth_series_leave_out_unfinished(logs):
    g = cmp.depth_group(_load(logs))
    s, notes = figs.depth_series(g)
    assert s["bipattern"] == [(20, 0.15)]
    assert [d for d, _ in s["gap_refined"]] == [20] and s["gap_refined"][0][1] == \
        pytest.approx(5.0)
    assert s["gap_ste_bn"][0][1] == pytest.approx(2.0)
    assert [d for d, _ in s["release_gap"]] == [20, 32, 44, 56]
    assert notes == ["not plotted for ResNet-56: Full unfinished at iteration 40, "
                     "no BiPattern yet, no Refined yet"]


def test_depth_series_note_a_step_not_tested_yet(logs):
    """A training step that has begun but not reached its first test is
    named as such (the figure once said "unfinished at iteration None")."""
    d = _resnet(logs, "resnet44", 44, _sched())
    (d / "3_refined.log").write_text(train_log({}, {0: 2.0, 10: 1.5}, done=False))
    _, notes = figs.depth_series(cmp.depth_group(_load(logs)))
    assert "not plotted for ResNet-44: Refined unfinished, not tested yet" in notes


def test_nothing_to_plot_writes_no_figure(tmp_path):
    """Only unfinished ResNets, small nets without a result: no figures."""
    root = tmp_path / "logs"
    _resnet(root, "r", 56, _sched(), done=False)
    _experiment(root, "small-nets", "cifar10-mobilenet", "cifar10-mobilenet", _sched(),
                {"1_full.log": train_log({}, {0: 2.0}, done=False)})
    out = _tool("plot_logs.py", root, "--dpi", "30")
    assert out.returncode == 0, out.stderr
    assert f"no {cmp.DEPTH_FIGURE}: no finished ResNet step to plot" in out.stdout
    assert f"no {cmp.SMALL_FIGURE}: no small net has a test result yet" in out.stdout
    assert not (root / cmp.DEPTH_FIGURE).exists() and not (root / cmp.SMALL_FIGURE).exists()


def _drawn_labels(points):
    """Label `points` on a real log-x axes as plot_small_nets does; the
    labels' and the points' boxes in display coordinates once drawn."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    for x, y, *_ in points:
        ax.plot([x], [y], "o", ms=9)
    ax.set_xscale("log")
    ax.set_xlim(0.2, 7)
    ax.margins(y=0.12)
    fig.tight_layout()
    figs._labels(ax, points)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    texts = {t.get_text(): t.get_window_extent(r) for t in ax.texts}
    marks = [ax.transData.transform((x, y)) for x, y, *_ in points]
    plt.close(fig)
    return texts, marks


#: This project's panel: SEP-Net-B fixed and STE at one size, 0.006 apart; R under R56.
_OURS = [(3.33, 0.8492, "SEP-Net-R (full precision)", "C0"),
         (0.91, 0.8448, "SEP-Net-B (fixed patterns)", "C1"),
         (0.91, 0.8506, "SEP-Net-B (STE, BN re-est.)", "C2"), (0.35, 0.8498, "SEP-Net-BQ", "C3"),
         (3.34, 0.7899, "MobileNet 0.5", "C4"), (2.95, 0.6787, "SqueezeNet", "C5"),
         (1.18, 0.8576, "ResNet-20 (reference)", "0.4"),
         (3.53, 0.8685, "ResNet-56 (reference)", "0.4")]


@pytest.mark.parametrize("points", [
    _OURS,
    # with a point far below (as an unfinished ResNet-44 at 0.10 once was), the axis
    # squeezes the SEP-Net-B pair together
    _OURS + [(2.75, 0.10, "ResNet-44 (reference)", "0.4")],
    # the paper's panel: equal top-1s side by side
    [(4.2, 63.7, "SEP-Net-B", "C0"), (5.2, 63.7, "MobileNet 0.5", "C1"),
     (1.3, 63.5, "SEP-Net-BQ", "C2"), (5.2, 65.8, "SEP-Net-R", "C3"),
     (4.8, 60.4, "SqueezeNet", "C4")]], ids=["ours", "ours-wide", "paper"])
def test_labels_cover_no_label_and_no_point(points):
    """Drawn, no two labels overlap and no label covers a point (the two
    SEP-Net-B labels once printed over each other at 0.91 MB)."""
    texts, marks = _drawn_labels(points)
    assert len(texts) == len(points)
    boxes = list(texts.items())
    for i, (a, ba) in enumerate(boxes):
        for b, bb in boxes[i + 1:]:
            assert not ba.overlaps(bb), (a, b)
        for mx, my in marks:
            assert not ba.contains(mx, my), (a, mx, my)
