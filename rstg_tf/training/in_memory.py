"""SyncMNIST training from NumPy arrays, on any Keras backend (no TensorFlow needed).

The tf.data trainer (``trainer.py``) is what we ship; this path exists for machines without
TensorFlow, such as a GPU box with JAX only (``KERAS_BACKEND=jax``): videos are generated
in memory by the pure-NumPy generator, and ``model.fit`` reads them through a
``keras.utils.PyDataset`` (under TensorFlow, through tf.data without its autotuning model:
``array_inputs``). Same models, same compile (``config.compile_model``), same
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
from rstg_tf.data.syncmnist import sync_pair_fields
from rstg_tf.models import build_model
from rstg_tf.training import checkpoints
from rstg_tf.training.array_inputs import (ShuffledBatches, array_arguments,
                                           validation_arguments)
from rstg_tf.training.config import (TrainConfig, check_resume, common_callbacks,
                                     compile_model, set_precision_policy, steps_per_epoch,
                                     time_limit_fields)
from rstg_tf.training.pretrain import load_backbone_weights
from rstg_tf.training.ranking import prediction_fields
from rstg_tf.training.run_log import read_log


def check_in_memory(config: TrainConfig) -> None:
    """Raises ValueError for what only the tf.data trainer does (distribution), and for a
    backup in ``model_dir`` made with other settings (``check_resume``)."""
    check_resume(config)
    if config.strategy != "default":
        raise ValueError(f"--strategy={config.strategy} needs the tf.data trainer "
                         f"(python -m train on shards); training from memory uses one device.")


def train_in_memory(config: TrainConfig, train: Tuple[np.ndarray, ...],
                    test: Tuple[np.ndarray, ...]) -> Dict:
    """Fits ``config``'s model on ``train`` arrays, validates and tests on ``test``.

    ``train`` and ``test`` are (clips, labels) or (clips, labels, digits) as
    ``make_videos`` returns them; with the test clips' digits, result.json also has the
    sync-pair accuracy (``rstg_tf.data.syncmnist.sync_pair_accuracy``).

    Writes into ``config.model_dir``: config.json, best.keras, last.keras, log.csv,
    backup/ (BackupAndRestore: called again after a kill, it resumes from the last finished
    epoch) and result.json (test top-1 / top-5, parameters, epochs run of ``epochs``, whether
    ``max_train_minutes`` stopped it, the backend and whether its step was compiled).
    Returns result.json's content.
    """
    check_in_memory(config)
    test_digits = test[2] if len(test) > 2 else None
    train, test = train[:2], test[:2]
    os.makedirs(config.model_dir, exist_ok=True)
    atomic_write_text(os.path.join(config.model_dir, "config.json"),
                      json.dumps(config.to_dict(), indent=1, sort_keys=True) + "\n")
    keras.utils.set_random_seed(config.seed)
    set_precision_policy(config)
    steps = steps_per_epoch(config, len(train[0]), config.batch_size)
    val_videos = min(config.val_videos or len(test[0]), len(test[0]))
    model = build_model(config.model)
    if config.backbone_weights:
        load_backbone_weights(model, config.backbone_weights, config.model,
                              trainable=not config.freeze_backbone)
    compile_model(model, config)
    backup = checkpoints.backup_dir(config.model_dir)
    metadata = checkpoints.read_backup_metadata(backup)
    first_epoch = metadata["epoch"] if metadata else 0
    callbacks = [checkpoints.AtomicBackupAndRestore(backup, delete_checkpoint=False),
                 *common_callbacks(config.model_dir, config)]
    batches = ShuffledBatches(*train, config.batch_size, steps, config.seed,
                              epoch=first_epoch)
    history = model.fit(
        **batches.fit_arguments(config.epochs, callbacks), epochs=config.epochs,
        **validation_arguments((test[0][:val_videos], test[1][:val_videos]),
                               config.batch_size),
        verbose=config.verbose)
    scores = model.evaluate(**array_arguments(test, config.batch_size), verbose=0,
                            return_dict=True)
    result = {"top1": float(scores["top1"]), "top5": float(scores["top5"]),
              "loss": float(scores["loss"]), "num_videos": int(len(test[0])),
              "parameters": int(model.count_params()),
              "epochs_run": first_epoch + len(history.history.get("loss", [])),
              "resumed_from_epoch": first_epoch, "epochs": config.epochs,
              **time_limit_fields(callbacks),
              "train_videos": int(len(train[0])), "backend": keras.backend.backend(),
              "jit_compile": bool(model.jit_compile), "dtype_policy": model.dtype_policy.name,
              "steps_per_execution": config.steps_per_execution,
              "final_lr": float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)),
              "val_top1": read_log(config.model_dir).get("val_top1", [])}  # restarts too
    logits = model.predict(**array_arguments(test[:1], config.batch_size), verbose=0)
    result.update(prediction_fields(np.argmax(logits, axis=-1)))
    if test_digits is not None:
        result.update(sync_pair_fields(logits, test_digits, test[1]))
    if not math.isfinite(result["loss"]):
        raise ValueError(f"training diverged (test loss {result['loss']}); "
                         f"see {config.model_dir}/log.csv.")
    atomic_write_text(os.path.join(config.model_dir, "result.json"),
                      json.dumps(result, indent=1) + "\n")
    return result
