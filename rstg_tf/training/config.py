"""What a training run is (``TrainConfig``): plain data, checked when made, importable
without Keras, so that a program refuses a bad flag before TensorFlow loads. How a run
is compiled and its callbacks: ``rstg_tf.training.fit_setup``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Iterator, Optional, Tuple

from rstg_tf.config import LR_SCHEDULES, MAX_GRAD_NORM_BATCHES, ModelConfig
from rstg_tf.data import manifest

STRATEGIES = ("default", "mirrored", "multi_worker")
OPTIMIZERS = ("sgd", "adam")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run (every flag of ``python -m train``).

    ``max_train_minutes`` ends a run early: fit stops about one batch past the limit, a
    cosine schedule is re-aimed to end its decay by then, and the run counts as done (it is
    tested). With ``pause_at_time_limit`` the limit only pauses it: fit stops between
    epochs, the schedule keeps its planned ``epochs x steps_per_epoch``, and the run is
    tested only once every epoch has run (the same command resumes it from its backup), so
    a run paused and resumed any number of times trains the same steps, on the same
    batches, under the same learning rates as an unbroken one.
    """

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
    clip_grad_norm: Optional[float] = None    # clip the gradients' global L2 norm (None: off)
    grad_norm_batches: int = 0                # log grad_norm on this many training batches
    plateau_patience: int = 2                 # epochs (or plateau_patience_steps)
    lr_schedule: str = "plateau"              # plateau | constant | cosine (schedules.py)
    warmup_steps: int = 0
    min_lr: float = 0.0                       # plateau's and cosine's floor
    cosine_fraction: float = 1.0              # cosine: share of the steps in the decay
    plateau_patience_steps: Optional[int] = None   # patience in steps (-> whole epochs)
    val_split: str = "val"                    # what fit validates on; never "test"
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
    pause_at_time_limit: bool = False         # the limit pauses a whole run (see below)

    def __post_init__(self):
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}; got "
                             f"{self.lr_schedule!r}.")
        if self.val_split == "test":
            raise ValueError("val_split must not be 'test': checkpoints and schedules are "
                             "chosen on validation data, and the test split is read once, "
                             "by python -m train.evaluate.")
        for name in ("learning_rate", "min_lr", "momentum", "cosine_fraction"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number; got {getattr(self, name)}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0; got {self.learning_rate}.")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0; got {self.warmup_steps}.")
        if not 0.0 <= self.min_lr < self.learning_rate:
            raise ValueError(f"min_lr must be in [0, learning_rate = {self.learning_rate}); "
                             f"got {self.min_lr}.")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1); got {self.momentum}.")
        check_clip_grad_norm(self.clip_grad_norm)
        check_grad_norm_batches(self.grad_norm_batches)
        if self.grad_norm_batches and self.strategy != "default":
            raise ValueError(f"grad_norm_batches needs strategy 'default' (got "
                             f"{self.strategy!r}): the gradient norms are taken outside the "
                             "strategy's replicas.")
        if not 0.0 < self.cosine_fraction <= 1.0:
            raise ValueError(f"cosine_fraction must be in (0, 1]; got {self.cosine_fraction}.")
        if self.plateau_patience < 0 or (self.plateau_patience_steps is not None
                                         and self.plateau_patience_steps < 1):
            raise ValueError("plateau_patience must be >= 0 epochs and plateau_patience_steps "
                             ">= 1 step.")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}; got {self.strategy!r}.")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got {self.optimizer!r}.")
        if self.batch_size < 1 or self.epochs < 1 or self.steps_per_execution < 1:
            raise ValueError("batch_size, epochs and steps_per_execution must be positive.")
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


def check_clip_grad_norm(value: Optional[float]) -> None:
    """``clip_grad_norm`` is unset (None) or a finite number > 0; ValueError otherwise.
    Shared by ``TrainConfig`` and the oracle program, which trains without one."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"clip_grad_norm must be a finite number > 0 (or unset); got {value}.")


def check_grad_norm_batches(value: int) -> None:
    """``grad_norm_batches`` is in 0..``MAX_GRAD_NORM_BATCHES``; ValueError otherwise.
    Shared by ``TrainConfig`` and ``GradientNormLog`` (the oracle program's)."""
    if not 0 <= value <= MAX_GRAD_NORM_BATCHES:
        raise ValueError(f"grad_norm_batches must be in 0..{MAX_GRAD_NORM_BATCHES}; got "
                         f"{value}.")


# What may change between a run and its resumption (how long, how, where from); anything
# else (the model, the optimizer, the batch...) makes a different run.
RESUMABLE_CHANGES = frozenset({"data_dir", "model_dir", "epochs", "max_train_minutes",
                               "grad_norm_batches",
                               "pause_at_time_limit", "verbose", "on_corrupt",
                               "steps_per_execution", "jit_compile", "val_videos", "strategy",
                               "backbone_weights"})


def _flat(values: dict, prefix: str = "") -> Iterator[Tuple[str, object]]:
    for key, value in values.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield prefix + key, value


def read_stored_config(model_dir: str, advice: str = "use a new --model_dir"
                       ) -> Optional[dict]:
    """``model_dir``/config.json as flat ``{"model.x": ..., "epochs": ...}``; None if absent.

    Raises:
      ValueError: the file is unreadable (the message ends with ``advice``).
    """
    path = os.path.join(model_dir, "config.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return dict(_flat(json.load(f)))
    except ValueError as e:
        raise ValueError(f"{path} is unreadable ({e}): {advice}") from None


def setting_changes(stored: dict, config: TrainConfig,
                    allowed: frozenset = RESUMABLE_CHANGES) -> list:
    """``"key: stored -> new"`` for each setting of ``config`` that differs from ``stored``
    (``read_stored_config``) outside ``allowed`` (top-level field names); settings that
    ``stored`` lacks (written before they existed) are not compared."""
    new = dict(_flat(json.loads(json.dumps(config.to_dict()))))
    return [f"{key}: {stored[key]!r} -> {new[key]!r}" for key in sorted(new)
            if key in stored and stored[key] != new[key] and key.split(".")[0] not in allowed]


def check_resume(config: TrainConfig) -> None:
    """Refuses to resume a backup (``model_dir/backup``) made with other settings.

    Restoring it would either fail deep inside Keras (weights of another shape) or, worse,
    continue another run's weights under this run's config.json. Only the fields in
    ``RESUMABLE_CHANGES`` may differ from the stored config.json.

    Raises:
      ValueError: naming each differing setting, its stored and its new value.
    """
    from rstg_tf.training import checkpoints   # Keras: after the config's own checks

    backup = checkpoints.backup_dir(config.model_dir)
    if not os.path.exists(os.path.join(backup, checkpoints.METADATA)):
        return
    try:
        stored = read_stored_config(config.model_dir)
    except ValueError as e:
        raise ValueError(f"{e} (the backup beside it cannot be checked)") from None
    if stored is None:
        return
    if "val_split" not in stored:
        raise ValueError(f"{config.model_dir} holds a run that validated on the test split "
                         f"(its best.keras and learning rate were chosen on test): it cannot "
                         f"be resumed; use a new --model_dir (or delete {backup}).")
    changed = setting_changes(stored, config)
    if changed:
        raise ValueError(f"{config.model_dir} holds a backup of a run with other settings "
                         f"({'; '.join(changed)}): resume it with its own flags, or use a "
                         f"new --model_dir (or delete {backup} to start afresh there).")


def require_tf_config(strategy: str) -> None:
    """``multi_worker`` needs TF_CONFIG (the cluster and this task) on every worker."""
    if strategy == "multi_worker" and "TF_CONFIG" not in os.environ:
        raise ValueError("--strategy=multi_worker needs the TF_CONFIG environment variable "
                         "(cluster and task) on every worker.")


def check_inputs(config: TrainConfig) -> Tuple[int, int]:
    """What a SyncMNIST run needs besides its flags, checked without TensorFlow: its data's
    train and validation splits (their sizes are returned) and, for ``multi_worker``,
    TF_CONFIG. Raises FileNotFoundError / ValueError naming what is missing."""
    require_tf_config(config.strategy)
    return manifest.train_and_val_sizes(
        config.data_dir, config.val_split,
        f"make it with python -m train.make_syncmnist --split={config.val_split} "
        f"--output_dir={config.data_dir} --num_videos=5000 (and the generator settings of "
        f"its train split).")


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


def plateau_patience(config: TrainConfig, steps_per_epoch: int) -> int:
    """Epochs without progress before a plateau cut: ``plateau_patience``, or
    ``plateau_patience_steps`` rounded up to whole epochs (Keras checks once an epoch)."""
    if config.plateau_patience_steps is None:
        return config.plateau_patience
    return -(-config.plateau_patience_steps // steps_per_epoch)
