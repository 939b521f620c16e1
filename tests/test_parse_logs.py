"""tools/parse_logs.py and tools/plot_logs.py on hand-made experiment folders:
the table's form and where each number comes from, which BiPattern evaluation
is reported, steps still running, bad input, atomic and repeatable output."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from sepnets.report import parse_logs, plot_logs as plots, results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _stamp(t):
    """glog stamp of `t` seconds after 2024-03-01 10:00:00 (same day)."""
    h, rem = divmod(int(t), 3600)
    m, s = divmod(rem, 60)
    return f"I0301 {10 + h:02d}:{m:02d}:{s:02d}.{int(round((t % 1) * 1e6)):06d}"


def train_log(tests, losses, every=10, tid=77, done=True, t0=0.0, step_s=1.0,
              names=("accuracy", "accuracy_top5")):
    """A Caffe 1.0 train log: tests = {iteration: (top1, top5)}, losses = {it: loss}."""
    out = [f"{_stamp(t0)} {tid} caffe.cpp:197] Use CPU.",
           f"{_stamp(t0)} {tid} solver.cpp:45] Initializing solver from parameters: "]
    for it in sorted(set(tests) | set(losses)):
        t = t0 + 1 + it * step_s
        if it in tests:
            out.append(f"{_stamp(t)} {tid} solver.cpp:330] Iteration {it}, Testing net (#0)")
            for k, v in enumerate(tests[it]):
                out.append(f"{_stamp(t)} {tid} solver.cpp:397]     Test net output #{k}: "
                           f"{names[k]} = {v}")
            out.append(f"{_stamp(t)} {tid} solver.cpp:397]     Test net output #2: loss = "
                       f"1.5 (* 1 = 1.5 loss)")
        if it in losses:
            out.append(f"{_stamp(t)} {tid} solver.cpp:218] Iteration {it} (1 iter/s, "
                       f"{every}s/{every} iters), loss = {losses[it]}")
            out.append(f"{_stamp(t)} {tid} sgd_solver.cpp:105] Iteration {it}, lr = 0.1")
    if done:
        out.append(f"{_stamp(t0 + 2 + max(losses) * step_s)} {tid} solver.cpp:464] "
                   "Optimization Done.")
    return "\n".join(out) + "\n"


def eval_log(outputs, batches=4, tid=88, t0=0.0, cut=False):
    out = [f"{_stamp(t0)} {tid} caffe.cpp:281] Running for {batches} iterations."]
    for b in range(batches):
        for name, v in outputs.items():
            out.append(f"{_stamp(t0 + 1 + b)} {tid} caffe.cpp:304] Batch {b}, {name} = {v}")
    if not cut:
        out.append(f"{_stamp(t0 + batches)} {tid} caffe.cpp:309] Loss: 1.7")
        for name, v in outputs.items():
            out.append(f"{_stamp(t0 + batches)} {tid} caffe.cpp:321] {name} = {v}")
    return "\n".join(out) + "\n"


@pytest.fixture
def logs(tmp_path):
    root = tmp_path / "logs"
    a = root / "resnet20-small"
    a.mkdir(parents=True)
    (a / "1_full.log").write_text(train_log(
        {0: (0.1, 0.5), 20: (0.8, 0.99), 40: (0.9, 0.995)},
        {i: 2 - i / 40 for i in (0, 10, 20, 30, 40)}))
    (a / "2_bipattern_mean.log").write_text(eval_log({"accuracy": 0.3, "accuracy_top5": 0.7}))
    (a / "2_bipattern_offset0.06.log").write_text(
        eval_log({"accuracy": 0.4, "accuracy_top5": 0.8}, t0=5))
    (a / "2_bipattern_offset0.09.log").write_text(
        eval_log({"accuracy": 0.45, "accuracy_top5": 0.85}, batches=4, cut=True))
    (a / "3_refined.log").write_text(train_log(
        {0: (0.35, 0.75), 20: (0.85, 0.99)}, {0: 1.9, 10: 0.8, 20: 0.5}, step_s=2.0))
    (a / "experiment.json").write_text(json.dumps({
        "model": "ResNet-20", "bipattern_log": "2_bipattern_offset0.06.log",
        "reference": {"top1": 0.9125}}))
    b = root / "resnet32-running"
    b.mkdir()
    (b / "1_full.log").write_text(train_log({0: (0.1, 0.5), 10: (0.5, 0.9)}, {0: 2, 10: 1.5},
                                            done=False)[:-20])
    (b / "4_ste.log").write_text(train_log({0: (0.2, 0.6)}, {0: 2}))
    (b / "notes.log").write_text("not a caffe log\n")
    return root


def _tool(name, *args, cwd=None):
    return subprocess.run([sys.executable, os.path.join(REPO, "tools", name), *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def test_tables(logs):
    out = _tool("parse_logs.py", logs)
    assert out.returncode == 0, out.stderr
    combined = (logs / "RESULTS.md").read_text()
    head = "| Model | Acc | Ref | Full | BiPattern | Refined | STE |"
    assert head in combined and head in out.stdout
    assert ("| ResNet-20 | Top 1 <br /> Top 5 | 0.9125 <br /> - | 0.9000 <br /> 0.9950 | "
            "0.4000 <br /> 0.8000 | 0.8500 <br /> 0.9900 | - <br /> - |") in combined
    assert ("| resnet32-running | Top 1 <br /> Top 5 | - <br /> - | 0.5000 <br /> 0.9000 <br /> "
            "(unfinished, iteration 10) | - <br /> - | - <br /> - | 0.2000 <br /> 0.6000 |") \
        in combined
    md = (logs / "resnet20-small" / "results.md").read_text()
    assert "- BiPattern: `2_bipattern_offset0.06.log` (chosen in experiment.json)" in md
    assert "- Full: `1_full.log` at iteration 40" in md
    assert "| `2_bipattern_offset0.09.log` | 4 | partial (4 of 4 batches) |" in md
    running = (logs / "resnet32-running" / "results.md").read_text()
    assert "| Full | `1_full.log` | 10 | no (log ends here) |" in running
    assert "`notes.log`: no 'caffe train' or 'caffe test' results" in running
    assert "warning:" in out.stderr and "notes.log" in out.stderr
    # CSVs: one per log with results, beside the logs in csv/
    csvs = sorted(p.name for p in (logs / "resnet20-small" / "csv").iterdir())
    assert csvs == ["1_full.csv", "2_bipattern_mean.csv", "2_bipattern_offset0.06.csv",
                    "2_bipattern_offset0.09.csv", "3_refined.csv"]
    rows = (logs / "resnet20-small" / "csv" / "3_refined.csv").read_text().splitlines()
    assert rows[0] == "iteration,seconds,loss,lr,test:accuracy,test:accuracy_top5,test:loss"
    assert rows[1:] == ["0,1,1.9,0.1,0.35,0.75,1.5", "10,21,0.8,0.1,,,",
                        "20,41,0.5,0.1,0.85,0.99,1.5"]
    # repeatable, atomic: a second run writes the same files and leaves no temporaries
    before = {p: p.read_bytes() for p in logs.rglob("*") if p.is_file()}
    assert _tool("parse_logs.py", logs, "--quiet").returncode == 0
    after = {p: p.read_bytes() for p in logs.rglob("*") if p.is_file()}
    assert after == before
    assert not [p for p in after if p.name.startswith(".")]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(logs / "RESULTS.md").st_mode & 0o777 == 0o666 & ~umask


def test_best_bipattern_without_metadata(logs):
    os.remove(logs / "resnet20-small" / "experiment.json")
    exp = results.load_experiment(str(logs / "resnet20-small"))
    assert exp.name == "resnet20-small"
    # the cut evaluation has the best batch mean but is partial; it still competes,
    # and the table says which one was used and that it is partial
    assert exp.results["bipattern"].file == "2_bipattern_offset0.09.log"
    assert exp.bipattern_why == "best top-1 of 3 evaluations"
    md = parse_logs.experiment_markdown(exp)
    assert "| BiPattern | `2_bipattern_offset0.09.log` | 4 batches | partial (4 of 4 batches)" in md


def test_one_experiment_folder(logs):
    out = _tool("parse_logs.py", logs / "resnet20-small")
    assert out.returncode == 0, out.stderr
    assert (logs / "resnet20-small" / "results.md").is_file()
    assert not (logs / "RESULTS.md").exists()
    assert "| ResNet-20 |" in out.stdout


def test_googlenet_names_and_override(tmp_path):
    exp = tmp_path / "googlenet-3x3"
    exp.mkdir()
    names = ("loss1/top-1", "loss1/top-5")
    (exp / "3_refined.log").write_text(train_log({0: (0.5, 0.8)}, {0: 2}, names=names))
    (exp / "1_full.log").write_text(train_log({0: (0.6, 0.9)}, {0: 2}, names=names))
    e = results.load_experiment(str(exp))
    assert e.results["full"].acc.top1 == 0.6
    e = results.load_experiment(str(exp), top1="loss1/top-5")
    assert e.results["full"].acc.top1 == 0.9
    e = results.load_experiment(str(exp), top1="missing")
    assert e.results["full"].acc.top1 is None
    assert "| - <br /> 0.9000 |" in parse_logs.table([e])


@pytest.mark.parametrize("tool", ["parse_logs.py", "plot_logs.py"])
def test_bad_input_gives_one_line(tool, tmp_path):
    out = _tool(tool, tmp_path / "nowhere")
    assert out.returncode == 2
    assert out.stderr == f"{tool}: error: {tmp_path / 'nowhere'}: no such folder\n"
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "exp").mkdir()
    out = _tool(tool, empty)
    assert out.returncode == 2 and len(out.stderr.splitlines()) == 1
    assert "no Caffe logs (*.log)" in out.stderr
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "x.log").write_text("hello\n")
    out = _tool(tool, junk)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.splitlines()[-1].startswith(f"{tool}: error: {junk}")
    out = _tool(tool, "--help")
    assert out.returncode == 0 and "examples:" in out.stdout
    assert f"python tools/{tool} logs/" in out.stdout


def test_plots(logs):
    out = _tool("plot_logs.py", logs, "--dpi", "60")
    assert out.returncode == 0, out.stderr
    for name in ("resnet20-small", "resnet32-running"):
        png = logs / name / plots.FIGURE_NAME
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10000
        assert f"wrote {os.path.relpath(png)}\n" in out.stdout
    import matplotlib.image
    img = matplotlib.image.imread(str(logs / "resnet20-small" / plots.FIGURE_NAME))
    assert img.shape == (480, 720, 4)
    assert img[..., :3].std() > 0.05          # not a blank canvas
    assert not [p for p in logs.rglob(".*")]


def test_plot_offsets(logs):
    exp = results.load_experiment(str(logs / "resnet20-small"))
    series, markers, (it0, sec0) = plots.curves(exp)
    full, refined = series["full"], series["refined"]
    assert it0 == 40 and full["loss_it"] == [0, 10, 20, 30, 40]
    assert sec0 == 42.0                      # "Optimization Done." 42 s after the start
    assert refined["loss_it"] == [40, 50, 60] and refined["acc_it"] == [40, 60]
    # BiPattern evaluations lie between the steps, in time too: 4 + 4 + 4 s
    assert [m["sec"] for m in markers] == [46.0, 50.0, 54.0]
    assert [m["chosen"] for m in markers] == [False, True, False]
    assert refined["loss_sec"][0] == 54.0 + 1.0
    assert [m["acc"] for m in markers] == [0.3, 0.4, pytest.approx(0.45)]


def test_nested_runs_are_found_and_told_apart(logs):
    """logs/<variant>/<exp> (a second run of the same net kept apart) is an
    experiment too; a folder of other logs (no step logs) is not."""
    again = logs / "bnreset" / "resnet20-small"
    again.mkdir(parents=True)
    for f in ("1_full.log", "2_bipattern_mean.log", "experiment.json"):
        shutil.copy(logs / "resnet20-small" / f, again / f)
    (again / "3_refined.log").write_text(train_log({0: (0.4, 0.8), 20: (0.88, 0.99)}, {0: 1.8}))
    other = logs / "device-check"
    other.mkdir()
    (other / "train_gpu.log").write_text(train_log({0: (0.5, 0.9)}, {0: 1}))
    assert results.experiment_folders(str(logs)) == [
        str(logs / "resnet20-small"), str(logs / "resnet32-running"), str(again)]
    out = _tool("parse_logs.py", logs)
    assert out.returncode == 0, out.stderr
    combined = (logs / "RESULTS.md").read_text()
    assert "| ResNet-20 | Top 1" in combined
    assert "| ResNet-20 (bnreset) | Top 1 <br /> Top 5 | 0.9125 <br /> - | 0.9000 <br /> " \
           "0.9950 | 0.3000 <br /> 0.7000 | 0.8800 <br /> 0.9900 |" in combined
    assert "[ResNet-20 (bnreset)](bnreset/resnet20-small/results.md)" in combined
    assert not (other / "results.md").exists()
    out = _tool("plot_logs.py", logs, "--dpi", "40")
    assert out.returncode == 0, out.stderr
    assert (again / plots.FIGURE_NAME).stat().st_size > 1000


@pytest.mark.parametrize("flag", ["--top1", "--top5"])
def test_unknown_output_name_is_refused_before_writing(logs, flag):
    """A --top1/--top5 name no log reports used to print a table of "-" and
    overwrite results.md; now it is one line naming the name and the outputs
    the logs have, and no file changes."""
    assert _tool("parse_logs.py", logs, "--quiet").returncode == 0
    before = {p: p.read_bytes() for p in logs.rglob("*") if p.is_file()}
    out = _tool("parse_logs.py", logs, flag, "nosuch")
    assert out.returncode == 2, out.stdout + out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert "Traceback" not in out.stderr
    assert last.startswith(f"parse_logs.py: error: {logs}: {flag} nosuch: no log has")
    assert "accuracy_top5" in last and "accuracy" in last
    assert {p: p.read_bytes() for p in logs.rglob("*") if p.is_file()} == before
    # a name some log has is still accepted
    assert _tool("parse_logs.py", logs, "--quiet", flag, "accuracy").returncode == 0


def test_unfinished_step_without_a_test_yet(tmp_path):
    """A training step that has logged losses but no test yet (a run just
    started) is marked as such, not as tested at iteration None."""
    from sepnets.report.parse_logs import step_cell
    from sepnets.report.results import load_folders
    d = tmp_path / "logs" / "run" / "cifar10-squeezenet"
    d.mkdir(parents=True)
    (d / "1_full.log").write_text(train_log({}, {0: 2.3, 50: 2.0}, done=False)[:-20])
    (exp,) = load_folders(str(tmp_path / "logs"))
    assert step_cell(exp.results["full"]) == "- <br /> - <br /> (unfinished, not tested yet)"
