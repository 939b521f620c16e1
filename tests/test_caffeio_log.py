"""The Caffe log parser on hand-made logs of the cases real runs produce but
a short test run does not: GoogLeNet's three heads (the release's own log
excerpt), stock Caffe's older display line, NaN and inf losses, runs over
midnight and New Year, restarts in containers (same thread id), several test
nets, cut last lines and cut ``caffe test`` runs."""
import math
import textwrap

import pytest

from sepnets.caffeio import log as caffe_log
from sepnets.caffeio.log import accuracy_k, csv_text, parse_log, parse_text, pick_accuracy
from sepnets.errors import UserError


def _log(text):
    return textwrap.dedent(text).lstrip("\n")


# The release README's excerpt of a GoogLeNet fine-tuning log (indented as there).
GOOGLENET = """
        I0409 18:10:46.352432 12840 solver.cpp:311] Iteration 600000, loss = 1.67377
        I0409 18:10:46.352474 12840 solver.cpp:331] Iteration 600000, Testing net (#0)
        I0409 18:12:03.574512 12849 data_layer.cpp:73] Restarting data prefetching from start.
        I0409 18:12:03.837461 12840 solver.cpp:398]     Test net output #0: loss1/loss1 = 1.77901 (* 0.3 = 0.533704 loss)
        I0409 18:12:03.837510 12840 solver.cpp:398]     Test net output #1: loss1/top-1 = 0.57818
        I0409 18:12:03.837514 12840 solver.cpp:398]     Test net output #2: loss1/top-5 = 0.816221
        I0409 18:12:03.837522 12840 solver.cpp:398]     Test net output #3: loss2/loss2 = 1.4836 (* 0.3 = 0.44508 loss)
        I0409 18:12:03.837525 12840 solver.cpp:398]     Test net output #4: loss2/top-1 = 0.63776
        I0409 18:12:03.837528 12840 solver.cpp:398]     Test net output #5: loss2/top-5 = 0.859861
        I0409 18:12:03.837535 12840 solver.cpp:398]     Test net output #6: loss3/loss3 = 1.36136 (* 1 = 1.36136 loss)
        I0409 18:12:03.837539 12840 solver.cpp:398]     Test net output #7: loss3/top-1 = 0.679699
        I0409 18:12:03.837543 12840 solver.cpp:398]     Test net output #8: loss3/top-5 = 0.882702
        I0409 18:12:03.837548 12840 solver.cpp:316] Optimization Done.
        I0409 18:12:03.926012 12840 caffe.cpp:259] Optimization Done.
"""

# Stock Caffe before 1.0: no iter/s in the display line; 4-digit glog dates.
OLD_STOCK = _log("""
    I1125 20:00:00.000000  4242 caffe.cpp:184] Use CPU.
    I1125 20:00:00.100000  4242 solver.cpp:48] Initializing solver from parameters:
    test_iter: 100
    max_iter: 200
    I1125 20:00:01.000000  4242 solver.cpp:287] Solving ResNet-20
    I1125 20:00:01.000000  4242 solver.cpp:404] Iteration 0, Testing net (#0)
    I1125 20:00:02.000000  4242 solver.cpp:472]     Test net output #0: accuracy = 0.1
    I1125 20:00:02.000000  4242 solver.cpp:472]     Test net output #1: accuracy_top5 = 0.5
    I1125 20:00:02.000000  4242 solver.cpp:472]     Test net output #2: loss = 2.30259 (* 1 = 2.30259 loss)
    I1125 20:00:02.500000  4242 solver.cpp:228] Iteration 0, loss = 2.31
    I1125 20:00:02.500000  4242 solver.cpp:244]     Train net output #0: loss = 2.31 (* 1 = 2.31 loss)
    I1125 20:00:02.500000  4242 sgd_solver.cpp:106] Iteration 0, lr = 0.1
    I1125 20:01:02.500000  4242 solver.cpp:228] Iteration 100, loss = 1.5
    I1125 20:01:02.500000  4242 sgd_solver.cpp:106] Iteration 100, lr = 0.1
    I1125 20:01:02.600000  4242 solver.cpp:454] Snapshotting to binary proto file snap/resnet20_iter_100.caffemodel
    I1125 20:01:02.700000  4242 sgd_solver.cpp:273] Snapshotting solver state to binary proto file snap/resnet20_iter_100.solverstate
    I1125 20:02:02.500000  4242 solver.cpp:337] Iteration 200, loss = 0.9
    I1125 20:02:02.600000  4242 solver.cpp:404] Iteration 200, Testing net (#0)
    I1125 20:02:03.500000  4242 solver.cpp:472]     Test net output #0: accuracy = 0.71
    I1125 20:02:03.500000  4242 solver.cpp:472]     Test net output #1: accuracy_top5 = 0.97
    I1125 20:02:03.500000  4242 solver.cpp:472]     Test net output #2: loss = 0.95 (* 1 = 0.95 loss)
    I1125 20:02:03.600000  4242 solver.cpp:326] Optimization Done.
    I1125 20:02:03.700000  4242 caffe.cpp:215] Optimization Done.
""")


def test_googlenet_excerpt_reports_loss3():
    log = parse_text(_log(GOOGLENET), "googlenet.log")
    assert log.kind == "train" and log.complete and not log.truncated
    assert log.test_names[0] == ["loss1/loss1", "loss1/top-1", "loss1/top-5", "loss2/loss2",
                                 "loss2/top-1", "loss2/top-5", "loss3/loss3", "loss3/top-1",
                                 "loss3/top-5"]
    acc = log.accuracy()
    assert (acc.top1_name, acc.top5_name) == ("loss3/top-1", "loss3/top-5")
    assert (acc.top1, acc.top5, acc.iteration) == (0.679699, 0.882702, 600000)
    assert log.rows[0]["loss"] == 1.67377
    assert log.loss_weights["test:loss2/loss2"] == 0.3
    # the test took 77 s after the display line
    assert log.rows[0]["seconds"] == pytest.approx(77.485111)
    assert log.seconds == pytest.approx(77.57358)
    # an explicit name wins
    assert log.accuracy(top1="loss2/top-1").top1 == 0.63776


def test_old_stock_caffe_log():
    log = parse_text(OLD_STOCK)
    assert log.net_name == "ResNet-20"
    assert [r["iteration"] for r in log.rows] == [0, 100, 200]
    assert log.series("loss")[2] == [2.31, 1.5, 0.9]
    assert log.series("lr") == ([0, 100], [2.5, 62.5], [0.1, 0.1])
    assert log.series("train:loss") == ([0], [2.5], [2.31])
    acc = log.accuracy()
    assert (acc.top1, acc.top5, acc.iteration) == (0.71, 0.97, 200)
    assert (acc.top1_name, acc.top5_name) == ("accuracy", "accuracy_top5")
    assert log.snapshots == [(100, "snap/resnet20_iter_100.caffemodel")]
    assert log.seconds == pytest.approx(123.7)
    assert log.columns == ["iteration", "seconds", "loss", "lr", "train:loss", "test:accuracy",
                           "test:accuracy_top5", "test:loss"]


def test_nan_and_inf_losses_are_kept():
    text = _log("""
        I0101 10:00:00.000000 7 solver.cpp:218] Iteration 0 (0 iter/s, 0.1s/10 iters), loss = 2.3
        I0101 10:00:01.000000 7 solver.cpp:237]     Train net output #0: loss = 2.3 (* 1 = 2.3 loss)
        I0101 10:00:02.000000 7 solver.cpp:218] Iteration 10 (10 iter/s, 1s/10 iters), loss = -nan
        I0101 10:00:02.000000 7 solver.cpp:237]     Train net output #0: loss = nan (* 1 = nan loss)
        I0101 10:00:02.000000 7 sgd_solver.cpp:105] Iteration 10, lr = 0.1
        I0101 10:00:03.000000 7 solver.cpp:218] Iteration 20 (10 iter/s, 1s/10 iters), loss = inf
        I0101 10:00:03.000000 7 solver.cpp:330] Iteration 20, Testing net (#0)
        I0101 10:00:04.000000 7 solver.cpp:397]     Test net output #0: accuracy = 0.1
        I0101 10:00:04.000000 7 solver.cpp:397]     Test net output #1: loss = -inf (* 1 = -inf loss)
    """)
    log = parse_text(text)
    loss = log.series("loss")[2]
    assert loss[0] == 2.3 and math.isnan(loss[1]) and loss[2] == math.inf
    assert math.isnan(log.rows[1]["train:loss"])
    assert log.rows[2]["test:loss"] == -math.inf
    assert not log.complete and not log.warnings
    lines = csv_text(log).splitlines()
    assert lines[2].split(",")[2] == "nan" and lines[3].split(",")[2] == "inf"


def test_midnight_and_new_year():
    text = _log("""
        I1231 23:59:50.000000 7 solver.cpp:218] Iteration 0 (0 iter/s, 0s/10 iters), loss = 2
        I0101 00:00:10.500000 7 solver.cpp:218] Iteration 10 (1 iter/s, 20s/10 iters), loss = 1
        I0101 23:59:59.000000 7 solver.cpp:218] Iteration 20 (1 iter/s, 80000s/10 iters), loss = 1
        I0102 00:00:01.000000 7 solver.cpp:218] Iteration 30 (1 iter/s, 2s/10 iters), loss = 1
    """)
    assert parse_text(text).series("loss")[1] == [0.0, 20.5, 86409.0, 86411.0]
    # without 29 February in the log, a year without it is assumed
    feb = _log("""
        I0228 23:00:00.000000 7 solver.cpp:218] Iteration 0 (0 iter/s, 0s/10 iters), loss = 2
        I0301 01:00:00.000000 7 solver.cpp:218] Iteration 10 (0 iter/s, 0s/10 iters), loss = 2
    """)
    assert parse_text(feb).seconds == 7200
    # newer glog writes the year
    text = _log("""
        I20231231 23:59:59.000000 7 solver.cpp:218] Iteration 0 (0 iter/s, 0s/10 iters), loss = 2
        I20240101 00:00:01.250000 7 solver.cpp:218] Iteration 10 (0 iter/s, 0s/10 iters), loss = 2
    """)
    assert parse_text(text).seconds == 2.25


RUN_1 = """
    I0301 09:00:00.000000 100 caffe.cpp:197] Use CPU.
    I0301 09:00:00.100000 100 solver.cpp:45] Initializing solver from parameters:
    I0301 09:00:01.000000 100 solver.cpp:330] Iteration 0, Testing net (#0)
    I0301 09:00:02.000000 100 solver.cpp:397]     Test net output #0: accuracy = 0.1
    I0301 09:00:02.000000 101 data_layer.cpp:73] Restarting data prefetching from start.
    I0301 09:00:03.000000 100 solver.cpp:218] Iteration 0 (0 iter/s, 1s/10 iters), loss = 2.3
    I0301 09:00:13.000000 100 solver.cpp:218] Iteration 10 (1 iter/s, 10s/10 iters), loss = 2.0
    I0301 09:00:23.000000 100 solver.cpp:330] Iteration 20, Testing net (#0)
    I0301 09:00:24.000000 100 solver.cpp:397]     Test net output #0: accuracy = 0.3
    I0301 09:00:24.000000 100 solver.cpp:218] Iteration 20 (1 iter/s, 11s/10 iters), loss = 1.8
    I0301 09:00:24.500000 100 solver.cpp:447] Snapshotting to binary proto file s/n_iter_20.caffemodel
    I0301 09:00:34.000000 100 solver.cpp:218] Iteration 30 (1 iter/s, 10s/10 iters), loss = 1.7
    I0301 09:00:44.000000 100 solver.cpp:330] Iteration 40, Testing net (#0)
    I0301 09:00:45.000000 100 solver.cpp:397]     Test net output #0: accuracy = 0.4
    I0301 09:00:45.000000 100 solver.cpp:218] Iteration 40 (1 iter/s, 11s/10 iters), loss = 1.6
    I0301 09:00:46.000000 100 solver.cpp:218] Iteration 41 (1 iter/s, 11s/10 iters), lo"""

# resumed two hours later from the iteration-20 snapshot
RUN_2 = """
    I0301 11:00:00.000000 {tid} caffe.cpp:197] Use CPU.
    I0301 11:00:00.100000 {tid} solver.cpp:45] Initializing solver from parameters:
    I0301 11:00:00.500000 {tid} caffe.cpp:235] Resuming from s/n_iter_20.solverstate
    I0301 11:00:01.000000 {tid} solver.cpp:330] Iteration 20, Testing net (#0)
    I0301 11:00:02.000000 {tid} solver.cpp:397]     Test net output #0: accuracy = 0.31
    I0301 11:00:02.000000 {tid} solver.cpp:218] Iteration 20 (0 iter/s, 1s/10 iters), loss = 1.81
    I0301 11:00:12.000000 {tid} solver.cpp:218] Iteration 30 (1 iter/s, 10s/10 iters), loss = 1.71
    I0301 11:00:22.000000 {tid} solver.cpp:218] Iteration 40, loss = 1.61
    I0301 11:00:22.000000 {tid} solver.cpp:330] Iteration 40, Testing net (#0)
    I0301 11:00:23.000000 {tid} solver.cpp:397]     Test net output #0: accuracy = 0.42
    I0301 11:00:23.000000 {tid} solver.cpp:316] Optimization Done.
"""


@pytest.mark.parametrize("tid", ["200", "100"], ids=["new-process-id", "same-process-id"])
@pytest.mark.parametrize("glued", [False, True], ids=["cut-at-line", "cut-in-line"])
def test_restart_keeps_the_latest_run(tid, glued):
    first = _log(RUN_1)
    if not glued:
        first += "\n"
    log = parse_text(first + _log(RUN_2.format(tid=tid)))
    assert log.segments == 2 and log.restarts == [20] and log.complete
    assert log.resumed_from == ["s/n_iter_20.solverstate"]
    assert [r["iteration"] for r in log.rows] == [0, 10, 20, 30, 40]
    assert log.series("loss")[2] == [2.3, 2.0, 1.81, 1.71, 1.61]
    assert log.series("test:accuracy")[2] == [0.1, 0.31, 0.42]
    # 46 s of the first run (its cut line included when it has a newline),
    # then 23 s of the second; the two hours between them do not count
    first_run = 46.0 if not glued else 45.0
    assert log.series("loss")[1] == pytest.approx(
        [3.0, 13.0, first_run + 2.0, first_run + 12.0, first_run + 23.0])
    assert log.seconds == pytest.approx(first_run + 23.0)
    assert log.accuracy().top1 == 0.42


def test_new_process_found_by_thread_id():
    """A resumed run whose first line is not caffe.cpp's (e.g. driven from
    pycaffe): its new thread id marks where it started."""
    second = _log(RUN_2.format(tid=300)).replace(
        "I0301 11:00:00.000000 300 caffe.cpp:197] Use CPU.",
        "I0301 11:00:00.000000 300 upgrade_proto.cpp:1044] Attempting to upgrade input file")
    log = parse_text(_log(RUN_1) + "\n" + second)
    assert log.segments == 2 and log.restarts == [20]
    assert log.seconds == pytest.approx(46.0 + 23.0)


def test_resumed_run_still_running():
    """What the killed run logged after its snapshot is gone from the history
    even where the resumed run has not got that far yet."""
    second = _log(RUN_2.format(tid=200))
    second = second[:second.index("Iteration 40")]
    second = second[:second.rindex("\n") + 1]
    log = parse_text(_log(RUN_1) + "\n" + second)
    assert [r["iteration"] for r in log.rows] == [0, 10, 20, 30]
    assert log.series("test:accuracy")[2] == [0.1, 0.31]
    assert not log.complete and log.accuracy().iteration == 20


def test_iteration_going_back_without_any_header():
    """Lines without glog prefix (e.g. re-printed), a restart seen only in the
    iteration numbers: a restart from scratch keeps only the new run."""
    text = _log("""
        Iteration 0 (0 iter/s, 0s/10 iters), loss = 2
        Iteration 10 (0 iter/s, 0s/10 iters), loss = 1.5
        Iteration 20 (0 iter/s, 0s/10 iters), loss = 1.2
        Iteration 0 (0 iter/s, 0s/10 iters), loss = 2.1
        Iteration 10 (0 iter/s, 0s/10 iters), loss = 1.6
    """)
    log = parse_text(text)
    assert log.series("loss")[2] == [2.1, 1.6] and log.restarts == [0]
    assert log.seconds is None and all("seconds" not in r for r in log.rows)


def test_cut_last_line_is_dropped():
    text = _log("""
        I0101 10:00:00.000000 7 solver.cpp:330] Iteration 10, Testing net (#0)
        I0101 10:00:01.000000 7 solver.cpp:397]     Test net output #0: accuracy = 0.5
        I0101 10:00:01.000000 7 solver.cpp:397]     Test net output #1: accuracy_top5 = 0.9
        I0101 10:00:02.000000 7 solver.cpp:330] Iteration 20, Testing net (#0)
        I0101 10:00:03.000000 7 solver.cpp:397]     Test net output #0: accuracy = 0.61
    """).rstrip("\n")[:-1]          # killed while writing "0.61"
    log = parse_text(text)
    assert log.truncated and not log.complete
    assert log.accuracy().top1 == 0.5 and log.accuracy().iteration == 10
    assert any("last line cut" in w for w in log.warnings)


def test_several_test_nets_and_multi_value_outputs():
    text = _log("""
        I0101 10:00:00.000000 7 solver.cpp:330] Iteration 0, Testing net (#0)
        I0101 10:00:01.000000 7 solver.cpp:397]     Test net output #0: accuracy = 0.5
        I0101 10:00:01.000000 7 solver.cpp:397]     Test net output #1: per_class = 0.25
        I0101 10:00:01.000000 7 solver.cpp:397]     Test net output #2: per_class = 0.75
        I0101 10:00:01.000000 7 solver.cpp:330] Iteration 0, Testing net (#1)
        I0101 10:00:02.000000 7 solver.cpp:397]     Test net output #0: accuracy = 0.8
        I0101 10:00:02.000000 7 solver.cpp:218] Iteration 0 (0 iter/s, 0s/10 iters), loss = 2
    """)
    log = parse_text(text)
    assert log.rows[0]["test:accuracy"] == 0.5 and log.rows[0]["test#1:accuracy"] == 0.8
    assert log.test_names == {0: ["accuracy", "per_class", "per_class[1]"], 1: ["accuracy"]}
    assert log.rows[0]["test:per_class[1]"] == 0.75
    assert log.accuracy(net=1).top1 == 0.8


CAFFE_TEST = _log("""
    I0101 10:00:00.000000 9 caffe.cpp:275] Use CPU.
    I0101 10:00:00.500000 9 caffe.cpp:281] Running for 3 iterations.
    I0101 10:00:01.000000 9 caffe.cpp:304] Batch 0, accuracy = 0.2
    I0101 10:00:01.000000 9 caffe.cpp:304] Batch 0, accuracy_top5 = 0.6
    I0101 10:00:01.000000 9 caffe.cpp:304] Batch 0, loss = 2.1
    I0101 10:00:02.000000 9 caffe.cpp:304] Batch 1, accuracy = 0.4
    I0101 10:00:02.000000 9 caffe.cpp:304] Batch 1, accuracy_top5 = 0.7
    I0101 10:00:02.000000 9 caffe.cpp:304] Batch 1, loss = 1.9
    I0101 10:00:03.000000 9 caffe.cpp:304] Batch 2, accuracy = 0.3
    I0101 10:00:03.000000 9 caffe.cpp:304] Batch 2, accuracy_top5 = 0.8
    I0101 10:00:03.000000 9 caffe.cpp:304] Batch 2, loss = 2
    I0101 10:00:03.000000 9 caffe.cpp:309] Loss: 2
    I0101 10:00:03.000000 9 caffe.cpp:321] accuracy = 0.3
    I0101 10:00:03.000000 12 data_layer.cpp:73] Restarting data prefetching from start.
    I0101 10:00:03.000000 9 caffe.cpp:321] accuracy_top5 = 0.7
    I0101 10:00:03.000000 9 caffe.cpp:321] loss = 2 (* 1 = 2 loss)
""")


def test_caffe_test_log():
    log = parse_text(CAFFE_TEST)
    ev = log.evaluation
    assert log.kind == "test" and ev.complete and not log.rows
    assert (ev.iterations, ev.batches, ev.loss) == (3, 3, 2.0)
    assert ev.outputs == {"accuracy": 0.3, "accuracy_top5": 0.7, "loss": 2.0}
    assert ev.loss_weights == {"loss": 1.0} and ev.seconds == 2.5
    acc = log.accuracy()
    assert (acc.top1, acc.top5) == (0.3, 0.7)
    assert csv_text(log).splitlines() == [
        "batches,seconds,loss,complete,accuracy,accuracy_top5,loss", "3,2.5,2,1,0.3,0.7,2"]


def test_caffe_test_cut_short_and_rerun():
    cut = CAFFE_TEST[:CAFFE_TEST.index("Batch 2")]
    cut = cut[:cut.rindex("\n") + 1]
    ev = parse_text(cut).evaluation
    assert not ev.complete and ev.batches == 2
    assert ev.outputs["accuracy"] == pytest.approx(0.3)
    assert ev.outputs["accuracy_top5"] == pytest.approx(0.65)
    # a complete run then a cut rerun appended: the complete one counts
    ev = parse_text(CAFFE_TEST + cut).evaluation
    assert ev.complete and ev.outputs["accuracy_top5"] == 0.7


def test_concatenated_glog_files_with_year_headers():
    header = ("Log file created at: {}\nRunning on machine: host\n"
              "Log line format: [IWEF]mmdd hh:mm:ss.uuuuuu threadid file:line] msg\n")
    a = header.format("2023/12/31 23:00:00") + _log("""
        I1231 23:00:00.000000 5 caffe.cpp:197] Use CPU.
        I1231 23:00:05.000000 5 solver.cpp:218] Iteration 0 (0 iter/s, 0s/10 iters), loss = 2
        I1231 23:00:15.000000 5 solver.cpp:218] Iteration 10 (0 iter/s, 0s/10 iters), loss = 1.9
    """)
    b = header.format("2024/02/29 08:00:00") + _log("""
        I0229 08:00:00.000000 5 caffe.cpp:197] Use CPU.
        I0229 08:00:01.000000 5 caffe.cpp:235] Resuming from x_iter_10.solverstate
        I0229 08:00:02.000000 5 solver.cpp:218] Iteration 10 (0 iter/s, 0s/10 iters), loss = 1.8
        I0301 08:00:02.000000 5 solver.cpp:218] Iteration 20 (0 iter/s, 0s/10 iters), loss = 1.7
    """)
    log = parse_text(a + b)
    assert log.segments == 2 and log.restarts == [10]
    assert log.series("loss") == ([0, 10, 20], [5.0, 17.0, 17.0 + 86400], [2, 1.8, 1.7])


@pytest.mark.parametrize("name,k", [
    ("accuracy", 1), ("acc", 1), ("top-1", 1), ("accuracy_top1", 1), ("loss3/top-1", 1),
    ("acc@1", 1), ("Accuracy", 1), ("test_accuracy", 1), ("accuracy_top5", 5),
    ("top-5", 5), ("loss3/top-5", 5), ("acc5", 5), ("top5_accuracy", 5),
    ("loss", None), ("loss3/loss3", None), ("accumulate", None), ("prob", None)])
def test_accuracy_names(name, k):
    assert accuracy_k(name) == k


def test_pick_accuracy_prefers_the_main_head():
    names = ["loss1/loss1", "loss1/top-1", "loss1/top-5", "loss3/loss3", "loss3/top-1",
             "loss3/top-5", "loss2/loss2", "loss2/top-1", "loss2/top-5"]
    weights = {"loss1/loss1": 0.3, "loss2/loss2": 0.3, "loss3/loss3": 1.0}
    assert pick_accuracy(names, weights, 1) == "loss3/top-1"
    assert pick_accuracy(names, weights, 5) == "loss3/top-5"
    # without weights (a test log of accuracies only): the last head
    assert pick_accuracy(["a/top-1", "b/top-1"], {}, 1) == "b/top-1"
    assert pick_accuracy(["loss", "prob"], {}, 1) is None


def test_files_that_are_not_logs(tmp_path):
    with pytest.raises(UserError, match="log file not found"):
        parse_log(str(tmp_path / "missing.log"))
    empty = tmp_path / "empty.log"
    empty.write_text("")
    with pytest.raises(UserError, match="no 'caffe train' or 'caffe test' results"):
        parse_log(str(empty))
    timing = tmp_path / "time.log"
    timing.write_text(_log("""
        I0101 10:00:00.000000 9 caffe.cpp:343] Use CPU.
        I0101 10:00:01.000000 9 caffe.cpp:412] Average Forward-Backward: 3.1 ms.
    """))
    with pytest.raises(UserError) as e:
        parse_log(str(timing))
    assert str(e.value).startswith(str(timing) + ": ")
    binary = tmp_path / "bin.log"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(UserError):
        parse_log(str(binary))
    assert caffe_log.parse_text("\x00\x00garbage\n").kind is None
