"""Wall-clock limits: TimeLimit inside model.fit (fake clock), TimeBudget's shares, the
in-memory trainer and the tf.data trainer stopping on time, table.md's short-run note."""

import json

import keras
import numpy as np
import pytest

from rstg_tf.data.syncmnist import pair_label
from rstg_tf.training.config import TrainConfig
from rstg_tf.training.in_memory import train_in_memory
from train.time_budget import (MIN_ROW_MINUTES, ROW_SHARE, TimeBudget,
                                          row_minutes)
from rstg_tf.training.time_limit import TimeLimit
from train.table_report import epochs_note
from tests.test_training import TINY


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


class Advance(keras.callbacks.Callback):
    """Moves the fake clock on by ``seconds[i]`` at the i-th training batch's end (the last
    value repeats) and by ``validation`` at each validation's end; counts the batches."""

    def __init__(self, clock, seconds, validation=0.0):
        super().__init__()
        self.clock, self.seconds, self.validation, self.batches = clock, seconds, validation, 0

    def on_train_batch_end(self, batch, logs=None):
        self.clock.t += self.seconds[min(self.batches, len(self.seconds) - 1)]
        self.batches += 1

    def on_test_end(self, logs=None):
        self.clock.t += self.validation


def _fit(limit_minutes, batch_seconds, batches_per_epoch, epochs, validation=0.0,
         pause=False):
    clock = FakeClock()
    advance = Advance(clock, list(np.atleast_1d(batch_seconds)), validation)
    limit = TimeLimit(limit_minutes, pause=pause, clock=clock)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    x = np.zeros((4 * batches_per_epoch, 3), "float32")
    history = model.fit(x, np.zeros((len(x), 2), "float32"), batch_size=4, epochs=epochs,
                        validation_data=(x[:4], np.zeros((4, 2), "float32")), verbose=0,
                        callbacks=[advance, limit])
    return history, limit, advance


def test_no_epoch_is_begun_that_would_end_past_the_limit():
    # 25 s epochs, 60 s limit: after epoch 2 (50 s) a third would end at 75 s
    history, limit, advance = _fit(1.0, 12.5, 2, epochs=10)
    assert history.epoch == [0, 1] and advance.batches == 4
    assert limit.stopped and not limit.cut_short and limit.stopped_epoch == 1
    assert limit.elapsed == pytest.approx(50.0)
    # the same run with only two epochs planned: it ends on its own, not by the limit
    history, limit, _ = _fit(1.0, 12.5, 2, epochs=2)
    assert history.epoch == [0, 1] and not limit.stopped and limit.stopped_epoch is None


def test_an_epoch_past_the_limit_is_cut_short_and_still_validated():
    # 40 s batches: the second ends at 80 s > 60 s, in the first epoch of three batches
    history, limit, advance = _fit(1.0, 40.0, 3, epochs=5)
    assert advance.batches == 2 and history.epoch == [0]
    assert limit.stopped and limit.cut_short and limit.stopped_epoch == 0
    assert "val_loss" in history.history                 # the epoch's end still ran


def test_a_pausing_limit_stops_between_epochs_only(capsys):
    # as above, but pausing: the first epoch runs its three batches (120 s), then stops
    history, limit, advance = _fit(1.0, 40.0, 3, epochs=5, pause=True)
    assert advance.batches == 3 and history.epoch == [0]
    assert limit.stopped and not limit.cut_short and limit.stopped_epoch == 0
    assert "paused after epoch 1 of 5" in capsys.readouterr().out
    # 25 s epochs in a 60 s limit: as without pausing, after epoch 2
    history, limit, advance = _fit(1.0, 12.5, 2, epochs=10, pause=True)
    assert history.epoch == [0, 1] and advance.batches == 4 and not limit.cut_short


def test_a_slower_epoch_is_cut_in_time_for_its_validation():
    # epoch 1: 3 x 5 s + 15 s validation = 30 s, so a second epoch looks like it fits in
    # 70 s; it runs at 20 s a batch: after its second batch (70 s) one more validation
    # would end at 85 s, so it stops there rather than after a third batch (90 s)
    history, limit, advance = _fit(70 / 60, [5, 5, 5, 20], 3, epochs=5, validation=15.0)
    assert advance.batches == 5 and history.epoch == [0, 1]
    assert limit.stopped and limit.cut_short and limit.stopped_epoch == 1
    assert limit.elapsed == pytest.approx(85.0)


def test_limits_must_be_positive():
    for bad in (0, -1.0):
        with pytest.raises(ValueError, match="> 0 minutes"):
            TimeLimit(bad)
        with pytest.raises(ValueError, match="> 0 minutes"):
            TimeBudget(bad)
    with pytest.raises(ValueError, match="max_train_minutes must be > 0"):
        TrainConfig(data_dir="d", model_dir="m", max_train_minutes=0.0)


def test_time_budget_shares_what_is_left_and_keeps_the_rows_order(capsys):
    assert row_minutes(None, 5.0, 3) is None
    assert row_minutes(10.0, 1.0, 3) == pytest.approx(ROW_SHARE * 9.0 / 3)
    assert row_minutes(10.0, 1.0, 3, overhead=0.5) == pytest.approx(9.0 / 3 - 0.5)
    assert row_minutes(10.0, 1.0, 3, overhead=0.1) == pytest.approx(ROW_SHARE * 9.0 / 3)
    assert row_minutes(10.0, 9.9, 1) == 0.0                  # under MIN_ROW_MINUTES
    assert row_minutes(10.0, 12.0, 2) == 0.0                 # over budget
    clock = FakeClock()
    budget = TimeBudget(12.0, clock=clock)
    first = budget.row_limit("a", 3)
    assert first == pytest.approx(ROW_SHARE * 4.0)
    clock.t += 60 * (first + 1.0)                           # "a" took 1 min beyond its limit
    second = budget.row_limit("b", 2)
    assert budget.overhead == pytest.approx(1.0)
    assert second == pytest.approx((12.0 - first - 1.0) / 2 - 1.0)
    clock.t += 60 * 1.0                                     # "b" ended early: no new figure
    assert budget.row_limit("c", 1) == pytest.approx(12.0 - first - 2.0 - 1.0)
    assert budget.overhead == pytest.approx(1.0)
    out = capsys.readouterr().out
    assert "a: training limited to" in out and "c: training limited to" in out
    assert TimeBudget(None).row_limit("a", 1) is None


def test_time_budget_once_spent_runs_nothing_more(capsys):
    clock = FakeClock()
    budget = TimeBudget(4.0, clock=clock)
    assert budget.row_limit("a", 3) == pytest.approx(ROW_SHARE * 4.0 / 3)
    clock.t += 60 * (4.0 - 2 * MIN_ROW_MINUTES)             # 0.5 min left for two rows
    assert budget.row_limit("b", 2) == 0.0 and budget.spent
    # the last row alone would get 0.425 min, but a row after one not run is not run either
    assert row_minutes(4.0, budget.minutes(), 1) > MIN_ROW_MINUTES
    assert budget.row_limit("c", 1) == 0.0
    assert "c: not run, the time budget (4 min)" in capsys.readouterr().out


def test_in_memory_row_stops_on_time_and_says_so(tmp_path):
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 255, (16, 10, 64, 64, 1), dtype=np.uint8)
    digits = np.tile(np.array([[1, 2, 3]]), (16, 1))
    labels = np.full(16, pair_label(1, 2))
    model_dir = tmp_path / "row"
    config = TrainConfig(data_dir="", model_dir=str(model_dir), model=TINY, batch_size=4,
                         epochs=3, steps_per_epoch=2, val_videos=8, verbose=0,
                         max_train_minutes=1e-6)
    split = (clips[:8], labels[:8], digits[:8])
    result = train_in_memory(config, (clips, labels), split, split)
    assert result["stopped_by_time_limit"] and result["epochs_run"] == 1
    assert result["epochs"] == 3 and result["train_minutes"] > 0
    assert json.load(open(model_dir / "result.json"))["stopped_by_time_limit"]
    assert (model_dir / "best.keras").stat().st_size > 0   # checkpointed before it ended
    assert epochs_note(str(model_dir)) == "trained 1 of 3 epochs"


def test_a_paused_row_is_not_tested_and_resumes_on_its_planned_schedule(tmp_path,
                                                                        monkeypatch):
    """pause_at_time_limit: a row paused after epoch 1 of 3 reads neither val nor test for
    scores and writes no result.json; resumed, it runs its last two epochs and is tested,
    under the cosine planned for all 3 (not re-aimed at the limit)."""
    from rstg_tf.training import in_memory
    from rstg_tf.training.fit_setup import common_callbacks
    from rstg_tf.training.schedules import LearningRateCurve, ScheduledLearningRate

    rng = np.random.default_rng(0)
    clips = rng.integers(0, 255, (16, 10, 64, 64, 1), dtype=np.uint8)
    digits = np.tile(np.array([[1, 2, 3]]), (16, 1))
    labels = np.array([pair_label(*p) for p in [(1, 2), (1, 3), (2, 3), (1, 2)] * 4])
    val, test = (clips[:8], labels[:8], digits[:8]), (clips[8:12], labels[8:12], digits[8:12])
    scored = []
    scores = in_memory._scores
    monkeypatch.setattr(in_memory, "_scores", lambda model, split, batch:
                        scored.append(len(split[0])) or scores(model, split, batch))

    def run(name, minutes=None, pause=True):
        config = TrainConfig(data_dir="", model_dir=str(tmp_path / name), model=TINY,
                             batch_size=4, epochs=3, steps_per_epoch=2, val_videos=8,
                             verbose=0, optimizer="adam", learning_rate=1e-2,
                             lr_schedule="cosine", min_lr=1e-4, max_train_minutes=minutes,
                             pause_at_time_limit=pause)
        return config, train_in_memory(config, (clips, labels), val, test)

    config, paused = run("row", minutes=1e-6)
    assert paused["paused"] and paused["epochs_run"] == 1 and paused["epochs"] == 3
    assert scored == [] and not (tmp_path / "row" / "result.json").exists()
    assert (tmp_path / "row" / "best.keras").stat().st_size > 0
    assert epochs_note(str(tmp_path / "row")) == "trained 1 of 3 epochs"
    schedule = [c for c in common_callbacks(config.model_dir, config, 2)
                if isinstance(c, ScheduledLearningRate)]
    assert schedule[0].limit is None                       # the cosine keeps its length
    limit = [c for c in common_callbacks(config.model_dir, config, 2)
             if isinstance(c, TimeLimit)]
    assert limit[0].pause
    _, resumed = run("row", minutes=60.0)
    assert scored == [8, 4] and resumed["epochs_run"] == 3 and "paused" not in resumed
    assert resumed["resumed_from_epoch"] == 1 and len(resumed["val_top1_curve"]) == 3
    # each epoch's logged rate is its last step's on the planned 6-step cosine (a resumed
    # run matching an unbroken one batch for batch: test_in_memory.py)
    curve = LearningRateCurve(peak=1e-2, total_steps=6, min_lr=1e-4)
    assert resumed["learning_rate_curve"] == pytest.approx([curve(1), curve(3), curve(5)],
                                                           rel=1e-6)
    assert resumed["final_lr"] == pytest.approx(1e-4)
    shortened = TrainConfig(data_dir="", model_dir="m", epochs=3, lr_schedule="cosine",
                            max_train_minutes=2.0)
    schedule = [c for c in common_callbacks("m", shortened, 2)
                if isinstance(c, ScheduledLearningRate)]
    assert schedule[0].limit == pytest.approx(120.0)       # without pausing: re-aimed


def test_epochs_note(tmp_path):
    assert epochs_note(str(tmp_path)) == ""                 # nothing written: no note
    (tmp_path / "config.json").write_text(json.dumps({"epochs": 4}))
    (tmp_path / "log.csv").write_text("epoch,loss\n0,1.0\n1,0.9\n1,0.9\n2,0.8\n")
    assert epochs_note(str(tmp_path)) == "trained 3 of 4 epochs"   # a resumed epoch once
    (tmp_path / "log.csv").write_text("epoch,loss\n0,1.0\n1,0.9\n2,0.8\n3,0.7\n")
    assert epochs_note(str(tmp_path)) == ""


def test_table_probes_run_only_for_a_frozen_backbone_with_time_left(tmp_path, monkeypatch,
                                                                     capsys):
    import types

    import experiments.sync_pair.feature_probe as feature_probe
    import train.table as table

    runs = []
    monkeypatch.setattr(feature_probe, "run_probes",
                        lambda *args, **kwargs: runs.append((args, kwargs)))
    fake = FakeClock()

    def probe(extra=(), budget=None, spent_minutes=0.0):
        clock = TimeBudget(budget, clock=fake)
        fake.t += spent_minutes * 60
        f = types.SimpleNamespace(extra_flags=list(extra))
        table._probe(3, "quick", "rstg_all_temp", str(tmp_path), "data/d", "bb.weights.h5",
                     f, clock)

    probe(["--epochs=2", "--steps_per_epoch=10"])        # quick: frozen, no time budget
    assert len(runs) == 1
    args, kwargs = runs[0]
    assert args == ("data/d", "bb.weights.h5", str(tmp_path / "probe.json"))
    for name, value in {"num_filters": 32, "epochs": 2, "steps_per_epoch": 10,
                        "batch_size": 16, "rows_dir": str(tmp_path)}.items():
        assert kwargs[name] == value, name
    probe(["--nofreeze_backbone"])                       # a fine-tuned backbone: no probes
    assert "not run, the rows fine-tune the backbone" in capsys.readouterr().out
    probe(budget=10.0)
    probe(budget=10.0, spent_minutes=7.5)                # 2.5 of 10 minutes left
    assert len(runs) == 2 and "not run, under 3 min of the time budget" in capsys.readouterr().out
    (tmp_path / "probe.json").write_text("{}")           # once per work dir
    probe()
    assert len(runs) == 2 and "probe.json is there already" in capsys.readouterr().out
