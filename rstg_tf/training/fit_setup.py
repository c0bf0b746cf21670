"""How a ``TrainConfig`` becomes a compiled model and the callbacks every run has: the
optimizer, XLA and the precision policy, the learning-rate schedule, the checkpoints,
the backup, the logs and the time limit.

Backend-neutral (no TensorFlow import): shared by the tf.data trainer and the in-memory
trainer that also runs under JAX.
"""

from __future__ import annotations

import os
from typing import Sequence

import keras

from rstg_tf.training import checkpoints
from rstg_tf.training.config import TrainConfig, plateau_patience
from rstg_tf.training.schedules import LearningRateCurve, schedule_callbacks
from rstg_tf.training.time_limit import TimeLimit


def make_optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    """Adam, or SGD with Nesterov momentum (the reference's); with ``clip_grad_norm`` the
    gradients are scaled together so that their global L2 norm is at most that value
    (Keras' ``global_clipnorm``, as PySlowFast's ``CLIP_GRAD_L2NORM`` and MMAction2's
    ``clip_grad``)."""
    clip = {"global_clipnorm": config.clip_grad_norm}
    if config.optimizer == "adam":
        return keras.optimizers.Adam(config.learning_rate, **clip)
    return keras.optimizers.SGD(config.learning_rate, momentum=config.momentum,
                                nesterov=True, **clip)


def jit_compile(config: TrainConfig) -> bool:
    """``config.jit_compile``, or by default XLA under JAX only.

    Keras compiles a JAX train step only when asked to: without it every op of the step is
    dispatched eagerly (the quick All-temp model on 2 CPU cores: 6.1 s a step, 1.6 s
    jitted; on a GPU the gap is wider, as the step is many small ops). TensorFlow already
    runs the step as a graph (``tf.function``); XLA there stays opt-in (``--jit_compile``).
    """
    if config.jit_compile is not None:
        return config.jit_compile
    return keras.backend.backend() == "jax"


def set_precision_policy(config: TrainConfig) -> None:
    """Keras' global dtype policy for the models built next: ``mixed_float16`` with
    ``mixed_precision``, else float32 (set either way: a process may train several runs)."""
    keras.mixed_precision.set_global_policy(
        "mixed_float16" if config.mixed_precision else "float32")


def compile_model(model: keras.Model, config: TrainConfig) -> None:
    model.compile(
        optimizer=make_optimizer(config),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="top1"),
                 keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5")],
        jit_compile=jit_compile(config), steps_per_execution=config.steps_per_execution)


def learning_rate_curve(config: TrainConfig, steps_per_epoch: int) -> LearningRateCurve:
    """The run's ``LearningRateCurve``: a cosine ends after ``epochs x steps_per_epoch``."""
    return LearningRateCurve(peak=config.learning_rate, warmup_steps=config.warmup_steps,
                             total_steps=config.epochs * steps_per_epoch,
                             cosine_fraction=config.cosine_fraction, min_lr=config.min_lr)


def common_callbacks(work_dir: str, config: TrainConfig, steps_per_epoch: int,
                     log_callbacks: Sequence[keras.callbacks.Callback] = ()) -> list:
    """Every run's callbacks, in the order they must act at an epoch's end:
    ``StopOnNaN`` (Keras' TerminateOnNaN; the checkpoints and backup skip a diverged epoch,
    and ``checkpoints.check_diverged`` turns it into an error); ``log_callbacks`` (more epoch logs, e.g. ``ValSyncPair``); the
    learning-rate schedule (``schedules``: plateau on ``val_loss``,
    constant or cosine); crash-safe ``best.keras`` (by ``val_top1``) and ``last.keras``;
    the backup (``AtomicBackupAndRestore``, after the schedule and checkpoints, so that it
    holds the rate they settled on, the plateau's counters and the best score so far: a
    resumed run goes on as an unbroken one would); ``log.csv`` (appended across restarts,
    in the columns of its first run: ``AppendingCSVLogger``); with ``max_train_minutes``, a ``TimeLimit`` (last; with ``pause_at_time_limit`` it
    stops between epochs and the schedule keeps its planned length). All of them watch the
    validation split, never the test split."""
    ends_early = config.max_train_minutes if not config.pause_at_time_limit else None
    schedule = schedule_callbacks(config.lr_schedule, learning_rate_curve(config, steps_per_epoch),
                                  steps_per_epoch, plateau_patience(config, steps_per_epoch),
                                  time_limit_minutes=ends_early)
    best = checkpoints.AtomicModelCheckpoint(os.path.join(work_dir, "best.keras"),
                                             monitor="val_top1", mode="max", save_best_only=True)
    stateful = {"best_checkpoint": best}
    stateful.update({"plateau": c for c in schedule
                     if isinstance(c, keras.callbacks.ReduceLROnPlateau)})
    limit = [TimeLimit(config.max_train_minutes, pause=config.pause_at_time_limit)
             ] if config.max_train_minutes else []
    return [
        checkpoints.StopOnNaN(),
        *log_callbacks,
        *schedule,
        best,
        checkpoints.AtomicModelCheckpoint(os.path.join(work_dir, "last.keras")),
        checkpoints.AtomicBackupAndRestore(checkpoints.backup_dir(work_dir),
                                           delete_checkpoint=False, stateful=stateful),
        checkpoints.AppendingCSVLogger(os.path.join(work_dir, "log.csv")),
        *limit,
    ]


def time_limit_fields(callbacks: list) -> dict:
    """``stopped_by_time_limit`` (and, with a ``TimeLimit``, ``train_minutes``: fit's wall
    time) from a fit's callbacks."""
    for callback in callbacks:
        if isinstance(callback, TimeLimit):
            return {"stopped_by_time_limit": callback.stopped,
                    "train_minutes": round(callback.elapsed / 60, 2)}
    return {"stopped_by_time_limit": False}
