"""One training function for both input sources: ``train_and_test(config, inputs=None)``.

It fits ``config``'s model, validating on the val split (``best.keras`` is the epoch with
the best validation top-1), then tests ``best.keras`` on the test split once:

* ``inputs=None``: SyncMNIST shards in ``config.data_dir``, through tf.data
  (``trainer.train``, any distribution strategy), then ``evaluation.evaluate`` of
  ``best.keras``, which writes ``eval_test.json`` (and its plots) into the model dir;
* ``inputs=(train, val, test)``: arrays in memory (``in_memory.train_in_memory``: no
  TensorFlow needed, so it also runs under ``KERAS_BACKEND=jax``), which loads
  ``best.keras``'s weights before the test and writes ``result.json``.

The two fits stay apart below this function because the shard trainer runs under a
``tf.distribute`` strategy, which the in-memory one must not import.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

from rstg_tf.training.config import TrainConfig


def train_and_test(config: TrainConfig,
                   inputs: Optional[Sequence[Sequence[np.ndarray]]] = None) -> Dict:
    """Trains (or resumes) ``config``'s run on shards (``inputs=None``) or on in-memory
    ``(train, val, test)`` arrays, and returns the test scores of ``best.keras``: the
    fields of eval_test.json (shards) or result.json (arrays). A non-chief worker of a
    multi-worker run trains and returns {} (the chief tests). A run that
    ``pause_at_time_limit`` paused before its last epoch is not tested: it returns
    ``{"paused": True, "epochs_run", "epochs", "best_val_top1"}``."""
    if inputs is not None:
        from rstg_tf.training.in_memory import train_in_memory

        train, val, test = inputs
        return train_in_memory(config, train, val, test)
    from rstg_tf.training import checkpoints
    from rstg_tf.training.evaluation import evaluate
    from rstg_tf.training.run_log import paused_fields
    from rstg_tf.training.trainer import is_chief, train

    first_epoch = checkpoints.epochs_backed_up(config.model_dir)
    history = train(config)
    if not is_chief():
        return {}
    paused = paused_fields(config, first_epoch + len(history.history.get("loss", [])))
    if paused:
        return paused
    return evaluate(config.model_dir, config.data_dir, split="test", checkpoint="best")
