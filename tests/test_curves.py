"""``python -m train.curves``: runs validated at other intervals share one step axis, the
step a run left sync-blind is read off its log, and bad runs are refused in one line."""

import json
import math

import numpy as np
import pytest

from rstg_tf import metrics, plots
from rstg_tf.training import curves
from tests.helpers import run_python

COLUMNS = ("epoch", "learning_rate", "loss", "val_sync_pair", "val_sync_pair_z", "val_top1")


def _run_dir(root, name, steps_per_epoch, z_curve, batch_size=64, epochs=40, rows=None,
             **config):
    """A model dir with config.json and a CSVLogger-style log.csv (one row per z value,
    or ``rows``: (epoch, z) pairs, as a resumed run appends them)."""
    path = root / name
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(
        {"steps_per_epoch": steps_per_epoch, "batch_size": batch_size, "epochs": epochs,
         "model": {"name": "rstg"}, **config}))
    lines = [",".join(COLUMNS)]
    for epoch, z in rows or enumerate(z_curve):
        sync = 1 / 3 + z * math.sqrt(2 / 9 / 5000)
        lines.append(f"{epoch},0.001,1.5,{sync},{z},{0.3 + 0.01 * epoch}")
    (path / "log.csv").write_text("\n".join(lines) + "\n")
    return str(path)


def test_runs_share_a_step_axis_and_report_when_they_left_sync_blind(tmp_path):
    cpu = curves.read_run(_run_dir(tmp_path, "cpu", 250, [0.1, 2.0, 5.5, 4.0]), "CPU")
    gpu = curves.read_run(_run_dir(tmp_path, "gpu", 1000, [1.0, 6.0], batch_size=128), None)
    assert gpu.label == "gpu" and cpu.epochs == 4 and cpu.planned_epochs == 40
    np.testing.assert_array_equal(cpu.x(), [250, 500, 750, 1000])
    np.testing.assert_array_equal(gpu.x("clips"), [128_000, 256_000])
    assert cpu.left_sync_blind_at() == 750                     # epoch 3 is the first > 5
    assert gpu.left_sync_blind_at() == 2000
    assert cpu.left_sync_blind_at(leave_z=6.0) is None
    assert metrics.first_past([None, float("nan"), 5.0, 5.1]) == 3
    table = curves.summary_table([cpu, gpu]).splitlines()
    assert table[2] == ("| CPU | 64 | 250 | 1,000 (4 of 40) | 33.0 | "
                        f"{100 * (1 / 3 + 4 * math.sqrt(2 / 9 / 5000)):.1f} (+4.0) | 750 steps |")
    assert table[3].startswith("| gpu | 128 | 1000 | 2,000 (2 of 40) | 31.0 |")
    assert table[3].endswith("| 2,000 steps |")

    series = curves.chart_series([cpu, gpu], "val_sync_pair")
    np.testing.assert_allclose(series["CPU"][0], [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(series["gpu"][1][1], 100 * (1 / 3 + 6 * math.sqrt(2 / 9 / 5000)))
    assert curves.levels("val_sync_pair", digits=5) == {"sync-blind 10.0 %": 10.0}
    assert curves.levels("val_sync_pair_z", leave_z=4.0) == {
        "sync-blind": 0.0, "left sync-blind (4 s.e.)": 4.0}
    with pytest.raises(ValueError, match="unknown metric"):
        curves.chart_series([cpu], "val_top5")


def test_a_resumed_run_counts_as_it_stands(tmp_path):
    # Resumed from the backup of epoch 0, the run logs epoch 1 again: its row counts.
    run = curves.read_run(_run_dir(tmp_path, "r", 100, None,
                                   rows=[(0, 0.5), (1, 1.0), (1, 7.0), (2, 3.0)]))
    assert run.columns["epoch"] == [0.0, 1.0, 2.0]
    assert run.columns["val_sync_pair_z"] == [0.5, 7.0, 3.0]
    assert run.left_sync_blind_at() == 200
    # Resumed from epoch 0's backup after epoch 2 was logged, and stopped again after
    # epoch 1: the old epoch 2 (z 9) is not part of the run as it stands.
    stale = curves.read_run(_run_dir(tmp_path, "stale", 100, None,
                                     rows=[(0, 0.0), (1, 1.0), (2, 9.0), (1, 2.0)]))
    assert stale.columns["val_sync_pair_z"] == [0.0, 2.0]
    assert stale.left_sync_blind_at() is None
    gap = _run_dir(tmp_path, "gap", 100, None, rows=[(0, 0.5), (2, 1.0)])
    with pytest.raises(ValueError, match="not 0, 1, 2"):
        curves.read_run(gap)


def test_table_cells_for_shard_rows_nan_and_time_cut_epochs(tmp_path):
    path = tmp_path / "shards"
    path.mkdir()
    (path / "config.json").write_text(json.dumps(
        {"steps_per_epoch": 300, "batch_size": 16, "epochs": 7, "max_train_minutes": 5.0}))
    # A shard row: no sync-pair columns; a NaN val top-1 first; an "NA" learning rate.
    (path / "log.csv").write_text("epoch,learning_rate,loss,val_top1\n"
                                  "0,NA,2.0,nan\n1,0.001,1.8,0.25\n")
    run = curves.read_run(str(path))
    assert run.short_epochs and "learning_rate" not in run.columns
    assert curves.summary_table([run]).splitlines()[2] == (
        "| shards | 16 | 300 | at most 600 (2 of 7) | 25.0 |  | "
        "n/a (no val sync pair logged) |")
    with pytest.raises(ValueError, match="no val_sync_pair column"):
        curves.chart_series([run], "val_sync_pair")
    paused = curves.read_run(_run_dir(tmp_path, "paused", 10, [float("nan")],
                                      max_train_minutes=5.0, pause_at_time_limit=True))
    assert not paused.short_epochs
    assert curves.summary_table([paused]).splitlines()[2].endswith(
        "| 10 (1 of 40) | 30.0 |  | not yet |")                  # a NaN sync pair: no cell


def test_runs_that_cannot_be_placed_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        curves.read_run(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        curves.read_run(str(tmp_path / "empty"))
    passes = _run_dir(tmp_path, "passes", None, [1.0])
    with pytest.raises(ValueError, match="passes over the data"):
        curves.read_run(passes)
    fresh = _run_dir(tmp_path, "fresh", 10, [])
    with pytest.raises(ValueError, match="no epoch in log.csv"):
        curves.read_run(fresh)
    no_batch = _run_dir(tmp_path, "no_batch", 10, [1.0], batch_size=None)
    with pytest.raises(ValueError, match="batch_size=None"):
        curves.read_run(no_batch)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{")
    with pytest.raises(ValueError, match="not a run train.curves can read"):
        curves.read_run(str(tmp_path / "bad"))


def _oracle_report(path, heads, steps_per_epoch=500, batch_size=16, epochs=80, sync=True):
    """An oracle report as ``python -m experiments.sync_pair.oracle`` writes it: per head,
    its per-epoch history (with the val sync pair unless not ``sync``) and its test
    figures."""
    report = {"steps_per_epoch": steps_per_epoch, "batch_size": batch_size, "epochs": epochs,
              "num_digits": 3, "schedules": {}}
    for head, z_curve in heads.items():
        report["schedules"][head] = {
            "val_top1": [0.3 + 0.01 * i for i in range(len(z_curve))],
            "val_sync_pair_z": list(z_curve), "loss": [1.5] * len(z_curve),
            "learning_rate": [1e-3] * len(z_curve), "test_top1": 0.4, "parameters": 9}
        if sync:
            report["schedules"][head]["val_sync_pair"] = [
                1 / 3 + z * math.sqrt(2 / 9 / 2000) for z in z_curve]
    path.write_text(json.dumps(report))
    return str(path)


def test_oracle_heads_are_runs_on_the_same_step_axis(tmp_path):
    from experiments.sync_pair.report import oracle_curves

    two = _oracle_report(tmp_path / "two.json", {"time_only": [1.0, 6.0, 3.0],
                                                 "all_temp": [0.0, 2.0, 5.5]})
    run = oracle_curves(two, "all_temp")
    assert (run.label, run.model_dir) == ("all_temp", f"{two}#all_temp")
    assert run.columns["epoch"] == [0.0, 1.0, 2.0] and "test_top1" not in run.columns
    np.testing.assert_array_equal(run.x(), [500, 1000, 1500])
    np.testing.assert_array_equal(run.x("clips"), [8000, 16000, 24000])
    assert run.left_sync_blind_at() == 1500 and run.planned_epochs == 80
    assert oracle_curves(two, "time_only", "T").left_sync_blind_at() == 1000
    assert curves.summary_table([run]).splitlines()[2] == (
        "| all_temp | 16 | 500 | 1,500 (3 of 80) | 32.0 | "
        f"{100 * (1 / 3 + 5.5 * math.sqrt(2 / 9 / 2000)):.1f} (+5.5) | 1,500 steps |")
    one = oracle_curves(_oracle_report(tmp_path / "one.json", {"space_only": [0.5]},
                                       sync=False))
    assert one.label == "space_only" and one.epochs == 1
    with pytest.raises(ValueError, match="logged no val_sync_pair column"):
        curves.chart_series([one], "val_sync_pair")

    for heads, where, message, error in (
            (None, "missing.json", "does not exist", FileNotFoundError),
            ({"a": [1.0], "b": [1.0]}, None, "holds the heads a, b: name one", ValueError),
            ({"a": [1.0]}, "c", "has no head 'c'; it has a", ValueError),
            ({"a": []}, None, "has no epoch in its val_top1", ValueError)):
        path = tmp_path / "missing.json" if heads is None else tmp_path / "bad.json"
        if heads is not None:
            _oracle_report(path, heads)
        with pytest.raises(error, match=message):
            oracle_curves(str(path), where if heads is not None else None)
    for text, message in (("{", "is not JSON"), ("[]", "no 'schedules'"),
                          ('{"schedules": {"a": {"val_top1": [0.3]}}}', "steps_per_epoch=None"),
                          ('{"schedules": {"a": {"val_top1": ["x"]}}, "steps_per_epoch": 1,'
                           ' "batch_size": 1, "epochs": 1}', "val_top1 history is not numbers")):
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(ValueError, match=message):
            oracle_curves(str(tmp_path / "bad.json"))


def test_xy_chart_draws_each_series_on_its_own_x(tmp_path):
    nan = float("nan")
    figure = plots._xy_figure({"a": ([0.25, 0.5, 0.75], [1.0, nan, 3.0]),
                               "b": ([1.0, 2.0], [2.0, 4.0])}, "t", "thousands of steps")
    a, b = figure.axes[0].lines
    assert list(a.get_xdata()) == [0.25, 0.75] and list(a.get_ydata()) == [1.0, 3.0]
    assert list(b.get_xdata()) == [1.0, 2.0]
    with pytest.raises(ValueError, match="2 x values for 3 y values"):
        plots._xy_figure({"a": ([1.0, 2.0], [1.0, 2.0, 3.0])}, "t", "x")
    assert figure.axes[0].get_xlabel() == "thousands of steps"
    path = tmp_path / "xy.png"
    plots.xy_chart({"a": ([1.0, 2.0], [1.0, 3.0])}, str(path), "t", "x", levels={"l": 2.0})
    assert path.stat().st_size > 0 and sorted(p.name for p in tmp_path.iterdir()) == ["xy.png"]


# The program, with Keras, TensorFlow and JAX blocked: it reads logs only.
_BLOCKED = """
import runpy, sys
class Blocked:
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "jax"):
            raise ImportError(name + " is blocked in this test")
sys.meta_path.insert(0, Blocked())
sys.argv = ["train.curves", *sys.argv[1:]]
runpy.run_module("train.curves", run_name="__main__")
"""


def test_curves_program_draws_the_runs_without_keras(tmp_path):
    cpu = _run_dir(tmp_path, "cpu", 250, [0.1, 2.0, 5.5])
    gpu = _run_dir(tmp_path / "lr=1e-3", "gpu", 1000, [1.0, 6.0])        # "=" in its path
    fresh = _run_dir(tmp_path, "fresh", 1000, [])
    out = tmp_path / "plots" / "curves.png"
    done = run_python(["-c", _BLOCKED, f"--run=All-temp (lr=1e-3)={cpu}", f"--run={gpu}",
                       f"--run=G=P={gpu}", f"--run={fresh}", "--skip_unplaceable",
                       "--metric=val_sync_pair_z", f"--output={out}"], timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"left out: {fresh} has no epoch in log.csv yet."
    assert lines[3].startswith("| All-temp (lr=1e-3) | 64 | 250 | 750 (3 of 40) |")
    assert lines[4].startswith("| gpu | 64 | 1000 | 2,000 (2 of 40) |")
    assert lines[5].startswith("| G=P | 64 | 1000 |")
    assert json.loads(lines[-1]) == {"files": [str(out)]}
    assert out.stat().st_size > 0

    # Oracle heads beside a model directory; "#" picks the head, "=" may be in the path.
    (tmp_path / "a=b").mkdir()
    report = _oracle_report(tmp_path / "a=b" / "oracle.json",
                            {"time_only": [6.0], "all_temp": [1.0, 2.0]})
    done = run_python(["-c", _BLOCKED, f"--run=Oracle, All-temp={report}#all_temp",
                       f"--run={report}#time_only", f"--run=CPU={cpu}"], timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[2].startswith("| Oracle, All-temp | 16 | 500 | 1,000 (2 of 80) |")
    assert lines[3].startswith("| time_only | 16 | 500 | 500 (1 of 80) |")
    assert lines[3].endswith("| 500 steps |") and lines[4].startswith("| CPU | 64 | 250 |")

    no_sync = tmp_path / "shard_row"
    no_sync.mkdir()
    (no_sync / "config.json").write_text(json.dumps({"steps_per_epoch": 3, "batch_size": 2}))
    (no_sync / "log.csv").write_text("epoch,val_top1\n0,0.5\n")
    for args, message in (([f"--run={cpu}", "--output=c.jpg"], "must name a .png"),
                          ([f"--run={cpu}", f"--run={cpu}"], "share a label"),
                          ([f"--run=x={tmp_path / 'none'}"], "does not exist"),
                          (["--run==x"], "give LABEL=MODEL_DIR"),
                          ([f"--run={fresh}"], "no epoch in log.csv"),
                          ([f"--run={fresh}", "--skip_unplaceable"], "no run could be placed"),
                          ([f"--run={no_sync}", "--output=c.png"], "no val_sync_pair column"),
                          ([f"--run={cpu}", "--metric=top5"], "--metric"),
                          ([f"--run=O={report}"], "name one as"),
                          ([f"--run=O={report}#mlp"], "has no head 'mlp'"),
                          ([f"--run=O={tmp_path / 'none.json'}"], "does not exist")):
        bad = run_python(["-m", "train.curves", *args], timeout=60)
        assert bad.returncode == 2, (args, bad.stderr)
        assert len(bad.stderr.strip().splitlines()) == 1 and message in bad.stderr, bad.stderr
        assert "|" not in bad.stdout                        # no table before the error
