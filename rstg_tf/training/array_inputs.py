"""In-memory training data for ``fit``, ``evaluate`` and ``predict``, on any Keras backend.

Under TensorFlow, Keras reads NumPy arrays and a ``keras.utils.PyDataset`` through tf.data
pipelines that run tf.data's autotuning model, and deleting such an iterator waits for
that model's thread: on 2 cores epoch starts stalled for 10-48 s (docs/performance.md).
Here they go through pipelines without it (``rstg_tf.data.pipeline``). Other backends get
the arrays or the PyDataset as they are: Keras reads those without tf.data.

    model.fit(**ShuffledBatches(x, y, 16, steps).fit_arguments(epochs, callbacks),
              epochs=epochs, **validation_arguments((x_val, y_val), 16))
    model.evaluate(**array_arguments((x_test, y_test), 16))
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import keras
import numpy as np


def _tensorflow() -> bool:
    return keras.backend.backend() == "tensorflow"


def array_arguments(arrays: Tuple[np.ndarray, ...], batch_size: int,
                    shuffle_seed: Optional[int] = None) -> dict:
    """``fit`` (with ``shuffle_seed``), ``evaluate`` or ``predict`` keyword arguments for
    ``(x,)`` or ``(x, y)``: under TensorFlow a tf.data pipeline (``array_dataset``; with
    a seed every pass is a fresh permutation), under other backends the arrays, shuffled
    by ``fit`` when there is a seed."""
    training = shuffle_seed is not None
    if _tensorflow():
        from rstg_tf.data.pipeline import array_dataset
        data = {"x": array_dataset(arrays, batch_size, shuffle_seed=shuffle_seed)}
        return {**data, "shuffle": False} if training else data     # shuffled already
    data = {"x": arrays[0], "batch_size": batch_size}
    if len(arrays) > 1:
        data["y"] = arrays[1]
    return {**data, "shuffle": True} if training else data


def validation_arguments(arrays: Tuple[np.ndarray, np.ndarray], batch_size: int) -> dict:
    """``fit``'s ``validation_data`` (and batch size) for ``(x, y)``, as ``array_arguments``."""
    data = array_arguments(arrays, batch_size)
    if "y" in data:
        return {"validation_data": (data["x"], data["y"]), "validation_batch_size": batch_size}
    return {"validation_data": data["x"]}


class ShuffledBatches(keras.utils.PyDataset):
    """``steps`` batches per epoch from arrays, in a fresh permutation per pass over them;
    epochs continue where the last one stopped (so short epochs still see every video).
    ``epoch``: the first epoch's index (a resumed run's), which fixes its batches.

    Every batch is a function of (``seed``, epoch, step), so a resumed run reads the batches
    an unbroken run would have. ``fit_arguments`` feeds them to ``fit`` so that its epoch e
    reads epoch e's batches on every backend."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, steps: int,
                 seed: int = 0, epoch: int = 0, **kwargs):
        super().__init__(**kwargs)
        if len(x) != len(y) or len(x) < batch_size:
            raise ValueError(f"need as many labels as clips and at least one batch; got "
                             f"{len(x)} clips, {len(y)} labels, batch {batch_size}.")
        self.x, self.y, self.batch_size, self.steps, self.seed = x, y, batch_size, steps, seed
        self.epoch = epoch
        self._orders: Dict[int, np.ndarray] = {}

    def __len__(self):
        return self.steps

    def _order(self, p: int) -> np.ndarray:
        if p not in self._orders:
            self._orders = {k: v for k, v in self._orders.items() if k >= p - 1}
            self._orders[p] = np.random.default_rng([self.seed, p]).permutation(len(self.x))
        return self._orders[p]

    def indices(self, i: int, epoch: Optional[int] = None) -> np.ndarray:
        """The clips of batch ``i`` of ``epoch`` (default: the current epoch)."""
        epoch = self.epoch if epoch is None else epoch
        start = (epoch * self.steps + i) * self.batch_size
        n = len(self.x)
        return np.array([self._order(k // n)[k % n]
                         for k in range(start, start + self.batch_size)])

    def batch(self, i: int, epoch: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        idx = self.indices(i, epoch)
        return self.x[idx], self.y[idx]

    def __getitem__(self, i):
        return self.batch(i)

    def on_epoch_end(self):
        self.epoch += 1

    def fit_arguments(self, epochs: int, callbacks: Sequence[keras.callbacks.Callback] = ()
                      ) -> dict:
        """``fit`` keyword arguments (``callbacks`` among them) that train on these batches
        from ``self.epoch`` up to ``epochs``.

        Under TensorFlow, one pipeline over all of those epochs' batches
        (``generator_dataset``) with ``steps_per_epoch``: Keras then keeps one iterator for
        the whole fit and deletes none between epochs. Other backends read this PyDataset,
        and a callback sets ``epoch`` to ``fit``'s as each epoch begins: counting
        ``on_epoch_end`` alone is one ahead, as ``fit``'s symbolic build ends a PyDataset
        epoch before the first."""
        if not _tensorflow():
            return {"x": self, "shuffle": False,    # the batches shuffle themselves, by epoch
                    "callbacks": [*callbacks, _FollowFitEpochs(self)]}
        from rstg_tf.data.pipeline import generator_dataset
        first = self.epoch

        def every_batch():
            for epoch in range(first, epochs):
                for i in range(self.steps):
                    yield self.batch(i, epoch)

        return {"x": generator_dataset(every_batch, self.batch(0, first)),
                "steps_per_epoch": self.steps, "shuffle": False, "callbacks": list(callbacks)}


class _FollowFitEpochs(keras.callbacks.Callback):
    """Sets a ``ShuffledBatches``' epoch to ``fit``'s (a resumed run's too) as it begins."""

    def __init__(self, batches: ShuffledBatches):
        super().__init__()
        self._batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self._batches.epoch = epoch
