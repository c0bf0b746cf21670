"""SyncMNIST training from NumPy arrays, on any Keras backend (no TensorFlow needed).

The tf.data trainer (``trainer.py``) is what we ship; this path exists for machines without
TensorFlow, such as a GPU box with JAX only (``KERAS_BACKEND=jax``): videos are generated
in memory by the pure-NumPy generator, and ``model.fit`` reads them through a
``keras.utils.PyDataset`` (under TensorFlow, through tf.data without its autotuning model:
``array_inputs``). Same models, same compile (``fit_setup.compile_model``), same
callbacks where they apply (crash-safe checkpoints, BackupAndRestore, ReduceLROnPlateau,
CSVLogger, TerminateOnNaN): a killed run started again resumes from its last epoch, on
the batches it would have seen.
"""

from __future__ import annotations

import json
import math
import os
from typing import Dict, Tuple

import keras
import numpy as np

from rstg_tf.data.atomic import atomic_write_text
from rstg_tf.metrics import prediction_fields, sync_pair_fields
from rstg_tf.models import build_model
from rstg_tf.training import checkpoints
from rstg_tf.training.array_inputs import (ShuffledBatches, array_arguments,
                                           validation_arguments)
from rstg_tf.training.config import TrainConfig, check_resume, steps_per_epoch
from rstg_tf.training.fit_setup import (common_callbacks, compile_model,
                                        set_precision_policy, time_limit_fields)
from rstg_tf.training.pretrain import load_backbone_weights
from rstg_tf.training.run_log import paused_fields, read_log
from rstg_tf.training.gradient_norms import GradientNormLog
from rstg_tf.training.sync_pair_log import ValSyncPair


# log.csv columns result.json keeps as per-epoch curves (``<name>_curve``).
CURVES = ("val_top1", "val_sync_pair", "val_sync_pair_z", "learning_rate")


def check_in_memory(config: TrainConfig) -> None:
    """Raises ValueError for what only the tf.data trainer does (distribution), and for a
    backup in ``model_dir`` made with other settings (``check_resume``)."""
    check_resume(config)
    if config.strategy != "default":
        raise ValueError(f"--strategy={config.strategy} needs the tf.data trainer "
                         f"(python -m train on shards); training from memory uses one device.")


def train_in_memory(config: TrainConfig, train: Tuple[np.ndarray, ...],
                    val: Tuple[np.ndarray, ...], test: Tuple[np.ndarray, ...]) -> Dict:
    """Fits ``config``'s model on ``train`` arrays, validating on ``val``; then tests the
    chosen checkpoint (``best.keras``, by validation top-1) on ``test`` once.

    ``train``, ``val`` and ``test`` are (clips, labels) or (clips, labels, digits) as
    ``make_videos`` returns them; with the clips' digits, result.json also has the
    sync-pair accuracy (``rstg_tf.metrics.sync_pair_accuracy``) of val and test.

    Writes into ``config.model_dir``: config.json, best.keras, last.keras, log.csv,
    backup/ (BackupAndRestore: called again after a kill, it resumes from the last finished
    epoch) and result.json (test top-1 / top-5 of best.keras, its validation scores, the
    last epoch's validation top-1, parameters, epochs run of ``epochs``, whether
    ``max_train_minutes`` stopped it, the backend and whether its step was compiled).
    Returns result.json's content; a run that ``pause_at_time_limit`` paused before its
    last epoch is not tested and writes no result.json: it returns
    ``run_log.paused_fields`` (``{"paused": True, ...}``).
    """
    check_in_memory(config)
    os.makedirs(config.model_dir, exist_ok=True)
    atomic_write_text(os.path.join(config.model_dir, "config.json"),
                      json.dumps(config.to_dict(), indent=1, sort_keys=True) + "\n")
    keras.utils.set_random_seed(config.seed)
    set_precision_policy(config)
    steps = steps_per_epoch(config, len(train[0]), config.batch_size)
    val_videos = min(config.val_videos or len(val[0]), len(val[0]))
    val = tuple(a[:val_videos] for a in val)
    model = build_model(config.model)
    if config.backbone_weights:
        load_backbone_weights(model, config.backbone_weights, config.model,
                              trainable=not config.freeze_backbone)
    compile_model(model, config)
    first_epoch = checkpoints.epochs_backed_up(config.model_dir)
    logged = [ValSyncPair(val, config.batch_size)] if len(val) > 2 else []
    if config.grad_norm_batches:
        logged.append(GradientNormLog(*train[:2], config.batch_size, config.grad_norm_batches))
    callbacks = common_callbacks(config.model_dir, config, steps, log_callbacks=logged)
    batches = ShuffledBatches(*train[:2], config.batch_size, steps, config.seed,
                              epoch=first_epoch)
    history = model.fit(
        **batches.fit_arguments(config.epochs, callbacks), epochs=config.epochs,
        **validation_arguments(val[:2], config.batch_size), verbose=config.verbose)
    checkpoints.check_diverged(callbacks, config.model_dir)
    epochs_run = first_epoch + len(history.history.get("loss", []))
    paused = paused_fields(config, epochs_run)
    if paused:
        return paused
    final_lr = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    log = read_log(config.model_dir)                    # every epoch, restarts too
    best = os.path.join(config.model_dir, "best.keras")
    if os.path.exists(best):
        model.load_weights(best)                        # the checkpoint chosen on val
    result = {"checkpoint": "best" if os.path.exists(best) else "last",
              "validation_split": config.val_split, "val_videos": int(len(val[0])),
              **{f"val_{k}": v for k, v in _scores(model, val, config.batch_size).items()},
              **{f"{key}_curve": log.get(key, []) for key in CURVES}}
    result.update(_scores(model, test, config.batch_size))
    result.update({"num_videos": int(len(test[0])), "parameters": int(model.count_params()),
                   "epochs_run": epochs_run,
                   "resumed_from_epoch": first_epoch, "epochs": config.epochs,
                   **time_limit_fields(callbacks),
                   "train_videos": int(len(train[0])), "backend": keras.backend.backend(),
                   "jit_compile": bool(model.jit_compile),
                   "dtype_policy": model.dtype_policy.name,
                   "steps_per_execution": config.steps_per_execution, "final_lr": final_lr})
    if not math.isfinite(result["loss"]):
        raise ValueError(f"training diverged (test loss {result['loss']}); "
                         f"see {config.model_dir}/log.csv.")
    atomic_write_text(os.path.join(config.model_dir, "result.json"),
                      json.dumps(result, indent=1) + "\n")
    return result


def _scores(model: keras.Model, split: Tuple[np.ndarray, ...], batch_size: int) -> Dict:
    """top1, top5, loss of ``model`` on (clips, labels[, digits]); with digits the
    sync-pair and present-pair fields, and the prediction fields, too."""
    scores = model.evaluate(**array_arguments(split[:2], batch_size), verbose=0,
                            return_dict=True)
    result = {"top1": float(scores["top1"]), "top5": float(scores["top5"]),
              "loss": float(scores["loss"])}
    logits = model.predict(**array_arguments(split[:1], batch_size), verbose=0)
    result.update(prediction_fields(np.argmax(logits, axis=-1)))
    if len(split) > 2:
        result.update(sync_pair_fields(logits, split[2], split[1]))
    return result
