"""Learning-rate schedules (--lr_schedule): the curve, its use in fit under TensorFlow and
JAX, the plateau's floor, the time-limited cosine, and the flags' errors."""

import json
import math

import numpy as np
import pytest

from rstg_tf.training.schedules import LearningRateCurve, ScheduledLearningRate
from tests.helpers import run_python


def test_curve_warms_up_holds_then_ends_its_cosine_at_the_floor():
    curve = LearningRateCurve(peak=1.0, warmup_steps=4, total_steps=24, cosine_fraction=0.5,
                              min_lr=0.1)
    assert [curve(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert curve.decay_start() == 14                      # the last half of 20 steps decays
    assert all(curve(s) == 1.0 for s in range(4, 15))
    values = [curve(s) for s in range(14, 24)]
    assert all(a > b for a, b in zip(values, values[1:]))
    assert curve(17) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 3 / 9)))
    assert curve(23) == curve(1000) == 0.1                # the last step is at its floor
    plain = LearningRateCurve(peak=2.0, total_steps=11)
    assert plain(0) == 2.0 and plain(5) == pytest.approx(1.0) and plain(10) == 0.0
    constant = LearningRateCurve(peak=3.0, warmup_steps=2)
    assert [constant(s) for s in (0, 1, 2, 10 ** 6)] == [1.5, 3.0, 3.0, 3.0]


class _FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_time_limited_cosine_reestimates_its_length_from_the_epochs_pace():
    """10 planned epochs of 100 steps, 10 s an epoch, a 1-minute limit: TimeLimit begins
    no epoch that would end past the limit, so 6 epochs run and the decay aims at 600."""
    clock = _FakeClock()
    curve = LearningRateCurve(peak=1.0, total_steps=1000, cosine_fraction=0.5)
    callback = ScheduledLearningRate(curve, steps_per_epoch=100, time_limit_minutes=1.0,
                                     clock=clock)
    callback.on_train_begin()
    totals = []
    for epoch in range(6):
        callback.on_epoch_begin(epoch)
        clock.now += 10.0
        logs = {}
        callback.on_epoch_end(epoch, logs)
        totals.append(logs["lr_total_steps"])
    assert totals == [1000] + [600] * 5        # the first epoch (compiling) is not a pace
    assert callback.curve(598) < 0.01 and callback.curve(599) == 0.0
    # a limit far away: the planned length stands
    far = ScheduledLearningRate(curve, steps_per_epoch=100, time_limit_minutes=60.0,
                                clock=clock)
    far.on_train_begin()
    far.on_epoch_begin(0)
    clock.now += 10.0
    logs = {}
    far.on_epoch_end(0, logs)
    assert logs["lr_total_steps"] == 1000


# Runs in this process (TensorFlow) and in a JAX one: w starts at 0, the loss is w * x with
# x = 1, so plain SGD moves w by -lr each step and w ends at minus the sum of the rates used.
SUM_OF_RATES = """
import json, sys
import numpy as np, keras
from rstg_tf.training.schedules import LearningRateCurve, schedule_callbacks

def run(schedule, steps_per_execution):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((1,)),
                              keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
    model.compile(keras.optimizers.SGD(0.5), loss=lambda y, p: keras.ops.mean(p),
                  steps_per_execution=steps_per_execution, jit_compile=True)
    curve = LearningRateCurve(peak=0.5, warmup_steps=3, total_steps=12, cosine_fraction=0.5,
                              min_lr=0.01)
    callbacks = schedule_callbacks(schedule, curve, steps_per_epoch=4, plateau_patience=5)
    x = np.ones((8, 1), "float32")
    model.fit(x, np.zeros(8), batch_size=2, epochs=3, shuffle=False, verbose=0,
              callbacks=callbacks)
    used = -float(keras.ops.convert_to_numpy(model.layers[0].kernel)[0, 0])
    expected = sum(curve(s) if schedule == "cosine" else (
        curve(s) if s < 3 else 0.5) for s in range(0, 12, steps_per_execution)
        for _ in range(steps_per_execution))
    return used, expected

print(json.dumps({f"{s}/{k}": run(s, k) for s in ("cosine", "constant", "plateau")
                  for k in (1, 2)}))
"""


def _check_sums(stdout):
    sums = json.loads(stdout.strip().splitlines()[-1])
    for key, (used, expected) in sums.items():
        assert used == pytest.approx(expected, rel=1e-5), (key, used, expected)


def test_the_scheduled_rate_is_the_one_fit_uses_under_tensorflow(capsys):
    exec(compile(SUM_OF_RATES, "SUM_OF_RATES", "exec"), {})
    _check_sums(capsys.readouterr().out)


def test_the_scheduled_rate_is_the_one_fit_uses_under_jax():
    """JAX keeps the variables in fit's own state during an epoch: the callback syncs it
    (jax_state_sync) so a rate set mid-epoch reaches the next compiled call."""
    result = run_python(["-c", SUM_OF_RATES], timeout=300, KERAS_BACKEND="jax")
    assert result.returncode == 0, result.stderr[-3000:]
    _check_sums(result.stdout)


def test_a_plateau_never_cuts_the_rate_below_min_lr():
    import keras

    from rstg_tf.training.schedules import schedule_callbacks

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3),
                              keras.layers.Dense(3, trainable=False)])
    model.layers[0].trainable = False          # the validation loss never improves
    model.compile(keras.optimizers.SGD(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 2)).astype("float32"), rng.integers(0, 3, 32)
    curve = LearningRateCurve(peak=1e-3, total_steps=None, min_lr=4e-5)
    history = model.fit(x, y, validation_data=(x[::-1] * 50, y), epochs=8, batch_size=16,
                        verbose=0, callbacks=schedule_callbacks("plateau", curve, 2, 0))
    rates = history.history["learning_rate"]
    assert min(rates) == pytest.approx(4e-5) and rates[0] == pytest.approx(1e-3)
    assert all(r >= 4e-5 * (1 - 1e-6) for r in rates)


@pytest.mark.parametrize("flag, message", [
    ("--lr_schedule=sideways", "lr_schedule"),
    ("--warmup_steps=-1", "warmup_steps must be >= 0"),
    ("--min_lr=1", "min_lr must be in [0, learning_rate"),
    ("--learning_rate=nan", "learning_rate must be a finite number"),
    ("--learning_rate=0", "learning_rate must be > 0"),
    ("--momentum=1.0", "momentum must be in [0, 1)"),
    ("--cosine_fraction=0", "cosine_fraction must be in (0, 1]"),
])
def test_bad_schedule_flags_are_one_line_and_exit_2(tmp_path, flag, message):
    result = run_python(["-m", "train", "--flagfile=configs/syncmnist3_rstg_all_temp.flags",
                         f"--data_dir={tmp_path}", f"--model_dir={tmp_path / 'run'}", flag])
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


# -- validation is never the test split ------------------------------------------------

def test_a_run_may_not_validate_on_the_test_split():
    from rstg_tf.training.config import TrainConfig

    with pytest.raises(ValueError, match="val_split must not be 'test'"):
        TrainConfig(data_dir="d", model_dir="m", val_split="test")


def test_a_run_that_validated_on_test_is_not_resumed(tmp_path):
    """A model dir from before the val split (config.json without val_split) is refused
    on resume by the trainers and by the table runner, with one line."""
    from rstg_tf.training import checkpoints
    from rstg_tf.training.config import TrainConfig, check_resume

    config = TrainConfig(data_dir="d", model_dir=str(tmp_path / "rstg_all_temp"))
    old = config.to_dict()
    del old["val_split"]
    (tmp_path / "rstg_all_temp" / "backup").mkdir(parents=True)
    (tmp_path / "rstg_all_temp" / "config.json").write_text(json.dumps(old))
    (tmp_path / "rstg_all_temp" / "backup" / checkpoints.METADATA).write_text('{"epoch": 1}')
    with pytest.raises(ValueError, match="validated on the test split"):
        check_resume(config)
    result = run_python(["-m", "train.table", "--in_memory", "--rows=rstg_all_temp",
                         f"--work_dir={tmp_path}"])
    assert result.returncode == 2, result.stderr[-2000:]
    assert "trained validating on the test split" in result.stderr


def test_the_in_memory_trainer_validates_on_val_and_tests_once(tmp_path, monkeypatch):
    from rstg_tf.training import in_memory
    from rstg_tf.training.config import TrainConfig
    from tests.test_training import TINY

    rng = np.random.default_rng(0)
    make = lambda n: (rng.integers(0, 255, (n, 10, 64, 64, 1), dtype=np.uint8),  # noqa: E731
                      rng.integers(0, 46, n))
    train, val, test = make(8), make(6), make(4)
    seen, scored = [], []
    validation = in_memory.validation_arguments
    scores = in_memory._scores
    monkeypatch.setattr(in_memory, "validation_arguments",
                        lambda arrays, batch: seen.append(arrays) or validation(arrays, batch))
    monkeypatch.setattr(in_memory, "_scores",
                        lambda model, split, batch: scored.append(split) or
                        scores(model, split, batch))
    config = TrainConfig(data_dir="", model_dir=str(tmp_path / "run"), model=TINY,
                         batch_size=2, epochs=2, steps_per_epoch=2, verbose=0)
    result = in_memory.train_in_memory(config, train, val, test)
    assert len(seen) == 1 and seen[0][0] is not test[0]
    np.testing.assert_array_equal(seen[0][0], val[0]) and np.testing.assert_array_equal(
        seen[0][1], val[1])
    assert [len(s[0]) for s in scored] == [6, 4]          # val once, then test once
    assert result["validation_split"] == "val" and result["val_videos"] == 6
    assert result["num_videos"] == 4
