"""The synchronous-pair scores of the validation clips after every epoch, in fit's logs.

Top-1 on SyncMNIST mixes recognising the digits with seeing which pair moves together; a
run that knows the digits sits at the sync-blind level (1/3 on 3SyncMNIST) until it
starts on the pair (``rstg_tf.metrics.sync_pair_accuracy``). Logging the pair per
epoch shows when, and by how many standard errors, a run leaves that level.
"""

from __future__ import annotations

from typing import Tuple

import keras
import numpy as np

from rstg_tf.metrics import sync_pair_fields, sync_pair_z
from rstg_tf.training.array_inputs import array_arguments


class ValSyncPair(keras.callbacks.Callback):
    """Adds ``val_sync_pair``, ``val_sync_pair_z`` (standard errors above sync-blind) and
    ``val_present_pair`` to each epoch's logs, from the model's logits on ``val``.

    Put it before the callbacks that read or write the logs (CSVLogger, checkpoints).

    Args:
      val: (clips, labels, digits) of the validation split, as ``make_videos`` returns
        them with ``with_digits=True``.
      batch_size: prediction batch.
    """

    def __init__(self, val: Tuple[np.ndarray, np.ndarray, np.ndarray], batch_size: int = 64):
        super().__init__()
        if len(val) != 3 or not len(val[0]) == len(val[1]) == len(val[2]):
            raise ValueError("ValSyncPair needs (clips, labels, digits) of equal length.")
        self.val, self.batch_size = val, batch_size

    def on_epoch_end(self, epoch, logs=None):
        logits = self.model.predict(**array_arguments(self.val[:1], self.batch_size),
                                    verbose=0)
        fields = sync_pair_fields(logits, self.val[2], self.val[1])
        if logs is not None and fields["sync_pair_top1"] is not None:
            logs["val_sync_pair"] = fields["sync_pair_top1"]
            logs["val_sync_pair_z"] = sync_pair_z(fields)
            logs["val_present_pair"] = fields["present_pair_top1"]
