"""Oracle digit maps: can an RSTG schedule find the synchronous pair once the digits are given?

The quick Table 1 rows read a frozen backbone and end sync-blind. To tell whether what
they lack is the backbone's digits or the pair itself, this module gives a row's RSTG
head (and its classifier) the digits for free: in place of the backbone's feature map,
each frame gets

    maps [T, grid, grid, 10]:  channel c = how much of the digit of class c lies in each
                               cell of the grid (its 28x28 box's area share, from the
                               video's true coordinates; each digit's cells sum to 1)

so the only thing left to learn is which pair is synchronous (its shared motion or its
constant offset, see ``rstg_tf.metrics.sync_pair_accuracy``). The head is the
quick rows' (D = 64), trained with the rows' optimiser and steps by default.

To ask how hard the pair is for any learner, the digits can also come as trajectories,
read by a plain MLP (the ``mlp`` head) instead of an RSTG schedule:

    positions [T, 10, 3]: per class channel, (present, row, col) of its box's corner,
                          scaled by the largest corner (71); zeros for absent classes
    steps     [T, 10, 3]: frame 0 as positions, then each frame's change since the frame
                          before: (0, the step in row, the step in col), the motion
                          given outright
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence, Tuple

import keras
import numpy as np

from rstg_tf.config import RSTGConfig
from rstg_tf.data.syncmnist import NUM_CLASSES, SyncMnistGenerator
from rstg_tf.layers.rstg import RSTG
from rstg_tf.metrics import LEAVE_Z, first_past, sync_pair_fields
from experiments.sync_pair.feature_probe import fit_adam
from rstg_tf.training.schedules import LearningRateCurve, schedule_callbacks
from rstg_tf.training.gradient_norms import GradientNormLog
from rstg_tf.training.sync_pair_log import ValSyncPair


def _cell_shares(start: np.ndarray, size: int, canvas: int, grid: int) -> np.ndarray:
    """[..., grid]: the share of [start, start + size) in each of ``grid`` equal cells."""
    edges = np.linspace(0.0, canvas, grid + 1)
    lo = np.maximum(edges[:-1], start[..., None])
    hi = np.minimum(edges[1:], start[..., None] + size)
    return np.clip(hi - lo, 0.0, None) / size


def _checked(coords, digits) -> Tuple[np.ndarray, np.ndarray]:
    """One video's coords [T, D, 2] and digits [D] (distinct classes 0-9) as arrays."""
    coords, digits = np.asarray(coords), np.asarray(digits)
    if coords.ndim != 3 or coords.shape[2] != 2 or digits.shape != (coords.shape[1],):
        raise ValueError(f"coords must be [T, D, 2] and digits [D]; got {coords.shape} and "
                         f"{digits.shape}.")
    if len(set(digits.tolist())) != len(digits) or digits.min() < 0 or digits.max() > 9:
        raise ValueError(f"digits must be distinct classes 0-9; got {digits.tolist()}.")
    return coords, digits


def digit_maps(coords, digits, grid: int = 6, canvas_size: int = 100,
               digit_size: int = 28) -> np.ndarray:
    """Oracle maps of one video.

    Args:
      coords: int [T, D, 2], each digit's (row, col) top-left corner on the canvas.
      digits: int [D], distinct classes 0-9.

    Returns:
      float32 [T, grid, grid, 10].
    """
    coords, digits = _checked(coords, digits)
    rows = _cell_shares(coords[..., 0], digit_size, canvas_size, grid)   # [T, D, grid]
    cols = _cell_shares(coords[..., 1], digit_size, canvas_size, grid)
    maps = np.zeros((coords.shape[0], grid, grid, 10), np.float32)
    maps[..., digits] = np.einsum("tdr,tdc->trcd", rows, cols)
    return maps


TRAJECTORIES = ("positions", "steps")
INPUTS = ("maps",) + TRAJECTORIES


def digit_trajectories(coords, digits, kind: str = "positions",
                       max_position: int = 71) -> np.ndarray:
    """Oracle trajectories of one video: float32 [T, 10, 3], ``kind`` "positions" or
    "steps" (see the module's docstring); ``coords`` and ``digits`` as ``digit_maps``."""
    if kind not in TRAJECTORIES:
        raise ValueError(f"kind must be one of {TRAJECTORIES}; got {kind!r}.")
    coords, digits = _checked(coords, digits)
    out = np.zeros((coords.shape[0], 10, 3), np.float32)
    out[:, digits, 0] = 1.0
    out[:, digits, 1:] = coords / max_position
    if kind == "steps":
        out[1:] = np.diff(out, axis=0)
    return out


def oracle_arrays(generator: SyncMnistGenerator, count: int, grid: int = 6,
                  progress: Optional[Callable[[int], None]] = None, inputs: str = "maps"
                  ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first ``count`` videos of ``generator`` as (inputs, labels [N], digits [N, D]):
    inputs ``maps`` [N, T, grid, grid, 10], or ``positions`` / ``steps`` [N, T, 10, 3]."""
    if not 1 <= count <= generator.num_videos:
        raise ValueError(f"count must be in 1..{generator.num_videos}; got {count}.")
    if inputs not in INPUTS:
        raise ValueError(f"inputs must be one of {INPUTS}; got {inputs!r}.")
    cfg = generator.config
    shape = (grid, grid, 10) if inputs == "maps" else (10, 3)
    x = np.zeros((count, cfg.num_frames) + shape, np.float32)
    labels = np.zeros(count, np.int64)
    digits = np.zeros((count, cfg.num_digits), np.int64)
    for i in range(count):
        video = generator.video(i)
        if inputs == "maps":
            x[i] = digit_maps(video.coords, video.digits, grid, cfg.canvas_size,
                              cfg.digit_size)
        else:
            x[i] = digit_trajectories(video.coords, video.digits, inputs,
                                      cfg.canvas_size - cfg.digit_size - 1)
        labels[i], digits[i] = video.label, video.digits
        if progress:
            progress(1)
    return x, labels, digits


def oracle_model(schedule: str, map_shape: Sequence[int], node_dim: int = 64,
                 message_dim: int = 64, norm: str = "none") -> keras.Model:
    """maps [B, T, grid, grid, 10] -> RSTG (``schedule``, the quick rows' widths,
    ``norm``) -> dense(46) logits: a Table 1 row with the backbone replaced by the
    oracle."""
    config = RSTGConfig(node_dim=node_dim, message_dim=message_dim, schedule=schedule,
                        norm=norm)
    maps = keras.Input(tuple(map_shape), name="digit_maps")
    pooled = RSTG(config, name="rstg")(maps)
    logits = keras.layers.Dense(NUM_CLASSES, dtype="float32", name="classifier")(pooled)
    return keras.Model(maps, logits, name=f"oracle_{schedule}")


def mlp_model(input_shape: Sequence[int], width: int = 512, depth: int = 2) -> keras.Model:
    """Any oracle input, flattened -> ``depth`` x dense(``width``, relu) -> dense(46)
    logits: a head with no built-in notion of frames, digits or pairs."""
    x = keras.Input(tuple(input_shape), name="oracle_inputs")
    h = keras.layers.Flatten(name="flatten")(x)
    for i in range(depth):
        h = keras.layers.Dense(width, activation="relu", name=f"hidden{i + 1}")(h)
    logits = keras.layers.Dense(NUM_CLASSES, dtype="float32", name="classifier")(h)
    return keras.Model(x, logits, name="oracle_mlp")


def run_oracle(schedule: str, train: Tuple[np.ndarray, np.ndarray, np.ndarray],
               val: Tuple[np.ndarray, np.ndarray, np.ndarray],
               test: Tuple[np.ndarray, np.ndarray, np.ndarray], epochs: int,
               steps_per_epoch: int, batch_size: int = 16, learning_rate: float = 3e-4,
               node_dim: int = 64, message_dim: int = 64, seed: int = 0,
               verbose: int = 0, mlp_width: int = 512, norm: str = "none",
               lr_schedule: str = "constant", cosine_fraction: float = 1.0,
               min_lr: float = 0.0, warmup_steps: int = 0,
               leave_z: float = LEAVE_Z,
               clip_grad_norm: Optional[float] = None,
               grad_norm_batches: int = 0) -> Dict[str, object]:
    """Trains ``oracle_model(schedule)``, or ``mlp_model`` for schedule ``mlp``, (Adam,
    ``lr_schedule`` and ``clip_grad_norm`` as in training runs) on ``train`` =
    ``oracle_arrays``, validated on ``val`` (with its sync pair per epoch,
    ``ValSyncPair``); then tests it once on ``test``. Returns the per-epoch history,
    ``steps_to_leave_sync_blind`` (the steps after the first epoch whose val sync pair is
    ``leave_z`` standard errors above sync-blind; None if none was) and the test clips'
    sync-pair fields. RSTG schedules read maps, the MLP any inputs. With
    ``grad_norm_batches``, the history has ``grad_norm`` and ``grad_norm_max`` per epoch
    (``GradientNormLog`` on the first batches of ``train``)."""
    keras.utils.set_random_seed(seed)
    if schedule == "mlp":
        model = mlp_model(train[0].shape[1:], mlp_width)
    elif train[0].ndim != 5:
        raise ValueError(f"RSTG schedules read maps [N, T, grid, grid, 10]; got inputs of "
                         f"shape {train[0].shape} (trajectories are for the mlp head).")
    else:
        model = oracle_model(schedule, train[0].shape[1:], node_dim, message_dim, norm)
    curve = LearningRateCurve(peak=learning_rate, warmup_steps=warmup_steps,
                              total_steps=epochs * steps_per_epoch,
                              cosine_fraction=cosine_fraction, min_lr=min_lr)
    callbacks = [ValSyncPair(val, batch_size=256),
                 *schedule_callbacks(lr_schedule, curve, steps_per_epoch, plateau_patience=2)]
    if grad_norm_batches:
        callbacks.insert(1, GradientNormLog(*train[:2], batch_size, grad_norm_batches))
    history = fit_adam(model, train[:2], val[:2], epochs, steps_per_epoch, batch_size,
                       learning_rate, seed, verbose, top_k=(1,), callbacks=callbacks,
                       clip_grad_norm=clip_grad_norm)
    left = first_past(history.get("val_sync_pair_z", []), leave_z)
    logits = model.predict(test[0], batch_size=256, verbose=0)
    return {**history, **sync_pair_fields(logits, test[2], test[1]),
            "steps_to_leave_sync_blind": None if left is None else (left + 1) * steps_per_epoch,
            "test_top1": float(np.mean(np.argmax(logits, axis=1) == test[1])),
            "parameters": int(model.count_params())}
