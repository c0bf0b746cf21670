"""Training with Keras ``model.fit`` on SyncMNIST shards.

``train(config)`` builds the model under the chosen distribution strategy, compiles it
(cross-entropy, top-1 / top-5), and fits it on the tf.data pipeline with Keras callbacks
only: BackupAndRestore (a killed run started again with the same command resumes from its
last epoch), ModelCheckpoint (``best.keras`` by validation top-1, ``last.keras``), the learning-rate
schedule (``--lr_schedule``: ReduceLROnPlateau on the validation loss, constant or cosine),
TensorBoard, CSVLogger (``log.csv``) and TerminateOnNaN. Validation reads the data's
``val`` split; the test split is read only by ``python -m train.evaluate``.
"""

from __future__ import annotations

import json
import math
import os
from typing import Callable, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from rstg_tf.data import pipeline, syncmnist_records
from rstg_tf.data.atomic import atomic_write_text
from rstg_tf.models import build_model
from rstg_tf.training.config import (  # noqa: F401 (TrainConfig: re-export)
    TrainConfig, check_inputs, check_resume, require_tf_config, steps_per_epoch)
from rstg_tf.training.fit_setup import common_callbacks, compile_model, set_precision_policy
from rstg_tf.training import checkpoints
from rstg_tf.training.gradient_norms import GradientNormLog
from rstg_tf.training.pretrain import load_backbone_weights


def make_strategy(name: str) -> tf.distribute.Strategy:
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        require_tf_config(name)
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief() -> bool:
    """True unless TF_CONFIG names this process a non-chief worker."""
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    if not task:
        return True
    if "chief" in cluster:
        return task.get("type") == "chief"
    return task.get("type") == "worker" and task.get("index", 0) == 0


def make_callbacks(config: TrainConfig, steps_per_epoch: int,
                   probe_data: Optional[tf.data.Dataset] = None) -> list:
    """The common callbacks and TensorBoard; with ``config.grad_norm_batches``, a
    ``GradientNormLog`` on that many batches taken once from ``probe_data`` (a pipeline of
    its own: reading fit's would move its shuffle seeds on, and change the run)."""
    # Multi-worker: every worker runs the callbacks; only the chief writes into model_dir.
    work_dir = config.model_dir if is_chief() else os.path.join(
        config.model_dir, "workers",
        f"worker-{json.loads(os.environ['TF_CONFIG'])['task']['index']}")
    logged = []
    if config.grad_norm_batches and probe_data is not None:
        batches = list(probe_data.take(config.grad_norm_batches).as_numpy_iterator())
        logged.append(GradientNormLog(np.concatenate([b[0] for b in batches]),
                                      np.concatenate([b[1] for b in batches]),
                                      len(batches[0][1]), config.grad_norm_batches))
    return [*common_callbacks(work_dir, config, steps_per_epoch, log_callbacks=logged),
            keras.callbacks.TensorBoard(os.path.join(work_dir, "tensorboard"))]


def multi_worker_workarounds(model: keras.Model, config: TrainConfig) -> None:
    """Two Keras 3 bugs with MultiWorkerMirroredStrategy (keras-team/keras#20585):

    * fit learns the input shapes by reducing the first distributed batch across workers,
      which fails ("Attempt to convert a value (PerReplica ...)"): give it an example batch;
    * the per-step logs (scalars) are reduced with ``axis=0``, which fails on scalars:
      reduce scalars with ``axis=None``.
    Both touch private Keras names, hence the pinned Keras range and the two-worker test.
    """
    from keras.src.backend.tensorflow import trainer as keras_tf_trainer

    clips = model.inputs[0]
    example = (tf.zeros((config.batch_size, *clips.shape[1:]), clips.dtype),
               tf.zeros((config.batch_size,), tf.int64))
    model._maybe_symbolic_build = (  # pylint: disable=protected-access
        lambda iterator=None, data_batch=None: model._symbolic_build(data_batch=example))
    original = keras_tf_trainer.reduce_per_replica
    if getattr(original, "rstg_patched", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and \
                keras_tf_trainer._collective_all_reduce_multi_worker(strategy):
            def mean(v):
                local = strategy.experimental_local_results(v)[0]
                return strategy.reduce("MEAN", v, axis=0 if local.shape.rank else None)
            return tf.nest.map_structure(mean, values)
        return original(values, strategy, reduction)

    reduce_per_replica.rstg_patched = True
    keras_tf_trainer.reduce_per_replica = reduce_per_replica


def train(config: TrainConfig) -> keras.callbacks.History:
    """Runs (or resumes) one training run; returns the Keras history of this process."""
    num_train, num_val = check_inputs(config)

    def datasets(global_batch, val_videos, corrupt):
        val_steps = max(math.ceil(val_videos / global_batch), 1)
        options = dict(on_corrupt=config.on_corrupt, corrupt=corrupt)
        train_data = syncmnist_records.dataset(config.data_dir, "train", global_batch,
                                               training=True, repeat=True, seed=config.seed,
                                               **options)
        val_data = syncmnist_records.dataset(config.data_dir, config.val_split, global_batch,
                                             training=False, **options)
        return train_data, val_data.take(val_steps)

    def build():
        model = build_model(config.model)
        if config.backbone_weights:
            load_backbone_weights(model, config.backbone_weights, config.model,
                                  trainable=not config.freeze_backbone)
        return model

    return fit_run(config, num_train, num_val, datasets, build)


def fit_run(config: TrainConfig, num_train: int, num_val: int,
            datasets: Callable[..., Tuple[tf.data.Dataset, tf.data.Dataset]],
            build: Callable[[], keras.Model]) -> keras.callbacks.History:
    """What every trainer shares: checks a resumption, writes config.json (chief), sets the
    precision and seed, builds (``build()``) and compiles the model under the strategy, and
    fits it on ``datasets(global_batch, val_videos) -> (train, val)`` with the common
    callbacks; ``datasets(global_batch, val_videos, corrupt)`` gets a
    ``pipeline.CorruptRecords`` under ``on_corrupt='skip'`` (else None), whose total is
    printed once at the end. Returns the Keras history of this process."""
    check_resume(config)
    os.makedirs(config.model_dir, exist_ok=True)
    if is_chief():
        atomic_write_text(os.path.join(config.model_dir, "config.json"),
                          json.dumps(config.to_dict(), indent=1, sort_keys=True) + "\n")
    set_precision_policy(config)
    keras.utils.set_random_seed(config.seed)
    strategy = make_strategy(config.strategy)
    global_batch = config.batch_size * strategy.num_replicas_in_sync
    steps = steps_per_epoch(config, num_train, global_batch)
    corrupt = pipeline.CorruptRecords() if config.on_corrupt == "skip" else None
    train_data, val_data = datasets(global_batch, min(config.val_videos or num_val, num_val),
                                    corrupt)
    # the same training pipeline again (same seed: its first batches are fit's first)
    probe = datasets(global_batch, 1, None)[0] if config.grad_norm_batches else None
    with strategy.scope():
        model = build()
        compile_model(model, config)
        if config.strategy == "multi_worker":
            multi_worker_workarounds(model, config)
        # fit inside the scope: Keras 3 runs its steps on the scope's strategy
        callbacks = make_callbacks(config, steps, probe)
        history = model.fit(train_data, epochs=config.epochs, steps_per_epoch=steps,
                            validation_data=val_data, shuffle=False, callbacks=callbacks,
                            verbose=config.verbose)
    if corrupt is not None and corrupt.summary():
        print(f"warning: {corrupt.summary()}")
    checkpoints.check_diverged(callbacks, config.model_dir)
    return history
