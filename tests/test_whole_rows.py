"""``python -m train.table --whole_rows``: rows trained for all their planned steps across
runs. Each row gets all the time left and pauses at its limit; a paused row is not tested
and shows in table.md as paused; a finished row is only reused when it was trained as the
current flags would train it."""

import json
import os
import types

import pytest

from rstg_tf.training.config import TrainConfig
from tests.test_ranking import _result
from tests.test_time_limit import FakeClock
from train.time_budget import ROW_SHARE, TimeBudget


def _configs(tmp_path, rows):
    return {row: TrainConfig(data_dir="", model_dir=str(tmp_path / row), epochs=40)
            for row in rows}


def _finished(row):
    return {**_result(0.5, 0.5, blind=1 / 3), "top5": 0.9, "parameters": 1000}


def _train_rows(tmp_path, monkeypatch, whole, paused=()):
    import train.table as table
    from rstg_tf.training import run

    calls = []

    def train_and_test(config, inputs=None):
        row = os.path.basename(config.model_dir)
        calls.append((row, config.max_train_minutes, config.pause_at_time_limit))
        if row not in paused:
            return _finished(row)
        os.makedirs(config.model_dir, exist_ok=True)      # what a paused run leaves
        (tmp_path / row / "config.json").write_text(json.dumps(config.to_dict()))
        (tmp_path / row / "log.csv").write_text("epoch,val_top1\n0,0.2\n1,0.4\n")
        return {"paused": True, "epochs_run": 2, "epochs": 40, "best_val_top1": 0.4}

    monkeypatch.setattr(run, "train_and_test", train_and_test)
    rows = ["rstg_all_temp", "rstg_time_only"]
    f = types.SimpleNamespace(extra_flags=[], whole_rows=whole)
    results = table._train_rows(3, "device", _configs(tmp_path, rows), None, f,
                                TimeBudget(10.0, clock=FakeClock()))
    return rows, calls, results


def test_whole_rows_get_all_the_time_left_and_pause(tmp_path, monkeypatch):
    _, calls, _ = _train_rows(tmp_path, monkeypatch, whole=True)
    assert calls == [("rstg_all_temp", pytest.approx(ROW_SHARE * 10.0), True),
                     ("rstg_time_only", pytest.approx(ROW_SHARE * 10.0), True)]
    _, calls, _ = _train_rows(tmp_path / "shared", monkeypatch, whole=False)
    assert calls[0] == ("rstg_all_temp", pytest.approx(ROW_SHARE * 10.0 / 2), False)


def test_a_paused_row_is_in_table_md_as_paused_and_untested(tmp_path, monkeypatch):
    from train.table_report import write_table

    rows, calls, results = _train_rows(tmp_path, monkeypatch, whole=True,
                                       paused=("rstg_time_only",))
    assert list(results) == ["rstg_all_temp"] and len(calls) == 2
    text = open(write_table(3, "device", rows, results, str(tmp_path))).read()
    assert ("| rstg_time_only | 40.0 | paused | | | | 89.7 | | trained 2 of 40 epochs; "
            "not tested yet |") in text, text
    assert "| rstg_all_temp |" in text and "| 50.0 |" in text
    assert "rstg_time_only:\n\n| epoch | val top-1 %" in text    # its curve so far


def test_after_a_paused_row_no_row_starts(tmp_path, monkeypatch, capsys):
    _, calls, results = _train_rows(tmp_path, monkeypatch, whole=True,
                                    paused=("rstg_all_temp",))
    assert [c[0] for c in calls] == ["rstg_all_temp"] and results == {}
    assert "continue in the next run" in capsys.readouterr().out


def test_whole_rows_refuse_a_finished_row_that_a_time_limit_shortened(tmp_path):
    import train.table as table

    config = TrainConfig(data_dir="", model_dir=str(tmp_path / "rstg_all_temp"), epochs=40)
    os.makedirs(config.model_dir)
    (tmp_path / "rstg_all_temp" / "config.json").write_text(json.dumps(config.to_dict()))
    (tmp_path / "rstg_all_temp" / "log.csv").write_text(
        "epoch,val_top1\n" + "".join(f"{e},0.4\n" for e in range(13)))
    path = tmp_path / "rstg_all_temp" / "result.json"
    path.write_text(json.dumps(_finished("rstg_all_temp")))
    args = (3, ["rstg_all_temp"], {"rstg_all_temp": str(path)}, lambda row: config)
    assert table._finished_rows(*args)["rstg_all_temp"]["top1"] == 0.5   # time-shared
    with pytest.raises(ValueError, match=r"ended by a time limit \(trained 13 of 40 epochs"):
        table._finished_rows(*args, whole=True)
    other = TrainConfig(data_dir="", model_dir=config.model_dir, epochs=40, seed=1)
    with pytest.raises(ValueError, match=r"other settings \(seed: 0 -> 1\)"):
        table._finished_rows(*args[:3], lambda row: other)


@pytest.mark.parametrize("pause", [True, False])
def test_a_paused_shard_run_is_not_evaluated(tmp_path, monkeypatch, pause):
    """The tf.data path of train_and_test: epochs run = the backup's + this fit's."""
    from rstg_tf.training import evaluation, run, trainer

    config = TrainConfig(data_dir="d", model_dir=str(tmp_path), epochs=3,
                         max_train_minutes=1.0, pause_at_time_limit=pause)
    os.makedirs(tmp_path / "backup")
    (tmp_path / "backup" / "training_metadata.json").write_text('{"epoch": 1}')
    evaluated = []
    monkeypatch.setattr(trainer, "train", lambda c: types.SimpleNamespace(
        history={"loss": [1.0]}))                       # one more epoch: 2 of 3
    monkeypatch.setattr(evaluation, "evaluate", lambda *a, **k: evaluated.append(a) or {"top1": 1})
    result = run.train_and_test(config)
    if pause:
        assert result["paused"] and result["epochs_run"] == 2 and evaluated == []
    else:
        assert result == {"top1": 1} and len(evaluated) == 1


def test_a_finished_row_trained_otherwise_is_refused(tmp_path):
    import train.table as table

    config = TrainConfig(data_dir="d", model_dir=str(tmp_path / "row"), epochs=40,
                         learning_rate=1e-3, max_train_minutes=5.0)
    os.makedirs(config.model_dir)
    stored = tmp_path / "row" / "config.json"

    def store(**changes):
        values = {**config.to_dict(), **changes}
        stored.write_text(json.dumps(values))

    store(max_train_minutes=2.5, data_dir="elsewhere", pause_at_time_limit=True)
    table._check_finished("row", config.model_dir, config)    # where and how long: fine
    store(epochs=13)
    with pytest.raises(ValueError, match=r"row row: .* other settings \(epochs: 13 -> 40\)"):
        table._check_finished("row", config.model_dir, config)
    store(model={**config.model.to_dict(), "dropout": 0.25})
    with pytest.raises(ValueError, match=r"model.dropout: 0.25 -> 0.0"):
        table._check_finished("row", config.model_dir, config)
    stored.unlink()
    table._check_finished("row", config.model_dir, config)    # nothing stored: nothing to say
