"""What a training run is (``TrainConfig``), how its model is compiled, and the callbacks
every run has.

Backend-neutral (no TensorFlow import): shared by the tf.data trainer and the in-memory
trainer that also runs under JAX.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Iterator, Optional, Tuple

import keras

from rstg_tf.models import ModelConfig
from rstg_tf.training import checkpoints
from rstg_tf.training.time_limit import TimeLimit

STRATEGIES = ("default", "mirrored", "multi_worker")
OPTIMIZERS = ("sgd", "adam")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run (every flag of ``python -m train``)."""

    data_dir: str
    model_dir: str
    model: ModelConfig = ModelConfig()
    batch_size: int = 8
    epochs: int = 10
    steps_per_epoch: Optional[int] = None     # default: train videos // batch
    val_videos: Optional[int] = None          # default: the whole test split
    optimizer: str = "sgd"                    # reference: SGD, Nesterov momentum 0.9
    learning_rate: float = 1e-4
    momentum: float = 0.9
    plateau_patience: int = 2
    backbone_weights: Optional[str] = None
    freeze_backbone: bool = False
    mixed_precision: bool = False
    jit_compile: Optional[bool] = None         # None: on under JAX, off under TF (jit_compile)
    steps_per_execution: int = 1              # train steps per compiled call (callbacks between)
    strategy: str = "default"
    on_corrupt: str = "raise"
    seed: int = 0
    verbose: int = 1
    max_train_minutes: Optional[float] = None  # wall-clock limit of fit (TimeLimit)

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}; got {self.strategy!r}.")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got {self.optimizer!r}.")
        if self.batch_size < 1 or self.epochs < 1 or self.learning_rate <= 0 \
                or self.steps_per_execution < 1:
            raise ValueError("batch_size, epochs, steps_per_execution and learning_rate must "
                             "be positive.")
        if self.steps_per_epoch and self.steps_per_epoch % self.steps_per_execution:
            raise ValueError(f"steps_per_epoch ({self.steps_per_epoch}) must be a multiple of "
                             f"steps_per_execution ({self.steps_per_execution}).")
        if self.max_train_minutes is not None and not self.max_train_minutes > 0:
            raise ValueError(f"max_train_minutes must be > 0; got {self.max_train_minutes}.")

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["model"] = self.model.to_dict()
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        values = dict(values)
        values["model"] = ModelConfig.from_dict(values["model"])
        return cls(**values)


# What may change between a run and its resumption (how long, how, where from); anything
# else (the model, the optimizer, the batch...) makes a different run.
RESUMABLE_CHANGES = frozenset({"data_dir", "model_dir", "epochs", "max_train_minutes",
                               "verbose", "on_corrupt", "steps_per_execution", "jit_compile",
                               "val_videos", "strategy", "backbone_weights"})


def _flat(values: dict, prefix: str = "") -> Iterator[Tuple[str, object]]:
    for key, value in values.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield prefix + key, value


def check_resume(config: TrainConfig) -> None:
    """Refuses to resume a backup (``model_dir/backup``) made with other settings.

    Restoring it would either fail deep inside Keras (weights of another shape) or, worse,
    continue another run's weights under this run's config.json. Only the fields in
    ``RESUMABLE_CHANGES`` may differ from the stored config.json.

    Raises:
      ValueError: naming each differing setting, its stored and its new value.
    """
    stored_path = os.path.join(config.model_dir, "config.json")
    backup = checkpoints.backup_dir(config.model_dir)
    if not (os.path.exists(os.path.join(backup, checkpoints.METADATA))
            and os.path.exists(stored_path)):
        return
    try:
        with open(stored_path) as f:
            stored = dict(_flat(json.load(f)))
    except ValueError as e:
        raise ValueError(f"{stored_path} is unreadable ({e}); the backup beside it cannot be "
                         f"checked: use a new --model_dir") from None
    new = dict(_flat(json.loads(json.dumps(config.to_dict()))))
    changed = [f"{key}: {stored[key]!r} -> {new[key]!r}" for key in sorted(new)
               if key in stored and stored[key] != new[key]
               and key.split(".")[0] not in RESUMABLE_CHANGES]
    if changed:
        raise ValueError(f"{config.model_dir} holds a backup of a run with other settings "
                         f"({'; '.join(changed)}): resume it with its own flags, or use a "
                         f"new --model_dir (or delete {backup} to start afresh there).")


def steps_per_epoch(config: TrainConfig, num_train_videos: int, global_batch: int) -> int:
    """``config.steps_per_epoch``, or one pass over the training videos, rounded down to a
    multiple of ``steps_per_execution`` (Keras runs whole executions: on a repeated dataset
    5 steps at 2 per execution would be 6).

    Raises:
      ValueError: fewer training videos than one execution needs. (An explicit
        ``steps_per_epoch`` that is not a multiple fails in ``TrainConfig``.)
    """
    per_call = config.steps_per_execution
    if config.steps_per_epoch:
        return config.steps_per_epoch
    steps = num_train_videos // global_batch // per_call * per_call
    if steps < 1 and per_call > 1:
        raise ValueError(f"{num_train_videos} training videos make fewer than "
                         f"steps_per_execution ({per_call}) batches of {global_batch}.")
    return max(steps, 1)


def make_optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    if config.optimizer == "adam":
        return keras.optimizers.Adam(config.learning_rate)
    return keras.optimizers.SGD(config.learning_rate, momentum=config.momentum,
                                nesterov=True)


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


def common_callbacks(work_dir: str, config: TrainConfig) -> list:
    """TerminateOnNaN, crash-safe ``best.keras`` (by val top-1) and ``last.keras``,
    ReduceLROnPlateau (/10 on val_loss), ``log.csv`` (appended across restarts) and, with
    ``max_train_minutes``, a ``TimeLimit`` (last)."""
    limit = [TimeLimit(config.max_train_minutes)] if config.max_train_minutes else []
    return [
        keras.callbacks.TerminateOnNaN(),
        checkpoints.AtomicModelCheckpoint(os.path.join(work_dir, "best.keras"),
                                          monitor="val_top1", mode="max",
                                          save_best_only=True),
        checkpoints.AtomicModelCheckpoint(os.path.join(work_dir, "last.keras")),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.1,
                                          patience=config.plateau_patience),
        keras.callbacks.CSVLogger(os.path.join(work_dir, "log.csv"), append=True),
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
