"""A clip classifier's online mode, read off the model itself.

``StreamingClassifier(model)`` walks the model's own layers, in order: the layers before
the RSTG block run on each frame (a one-frame clip: the backbone, a feature norm), the block
runs its ``step``, the layers after it (dropout, classifier) run on its output. So the
per-frame path is the model's path: a layer added to the model is either streamed too or
refused (a model that is not a single chain of layers, or whose graph block has no
recurrence, has no online mode), never silently left out. After T frames the logits
equal ``model(clip)``; the SavedModel's ``stream_step`` and the tests use this one path.
"""

from __future__ import annotations

from typing import Dict, Tuple

import keras
from keras import ops

from rstg_tf.layers.rstg import RSTG


class StreamingClassifier:
    """Frame-by-frame logits of a clip classifier with one RSTG block.

    Args:
      model: a functional model that is a chain: input -> per-frame layers -> ``RSTG``
        (a recurrent schedule, read-out ``mean_time`` or ``last_step``) -> layers on its
        output (as ``rstg_tf.models.build_model`` makes).

    Example (``model`` from ``build_model``, clips uint8 [B, T, H, W, C]):

        stream = StreamingClassifier(model)
        state = stream.initial_state(batch_size=B)
        for t in range(T):
            logits, state = stream.step(clips[:, t], state)   # == model(clips) at t = T-1
    """

    def __init__(self, model: keras.Model):
        layers = [layer for layer in model.layers
                  if not isinstance(layer, keras.layers.InputLayer)]
        previous = model.inputs[0]
        for layer in layers:
            try:
                chained = layer.input is previous
            except (AttributeError, ValueError):     # several inputs / several calls
                chained = False
            if not chained:
                raise ValueError(f"model {model.name!r} is not a single chain of layers (at "
                                 f"{layer.name!r}), so it has no online mode.")
            previous = layer.output
        blocks = [i for i, layer in enumerate(layers) if isinstance(layer, RSTG)]
        if len(blocks) != 1:
            raise ValueError(f"model {model.name!r} has {len(blocks)} RSTG blocks; the online "
                             "mode needs exactly one.")
        self.block = layers[blocks[0]]
        config = self.block.config
        if not config.has_time_recurrence or config.readout == "map":
            raise ValueError(f"the RSTG block of {model.name!r} (schedule "
                             f"{config.schedule!r}, read-out {config.readout!r}) has no "
                             "online mode: it needs a recurrent schedule and a vector "
                             "read-out.")
        self.model = model
        self.per_frame = layers[:blocks[0]]
        self.head = layers[blocks[0] + 1:]

    def initial_state(self, batch_size, dtype=None) -> Dict[str, object]:
        """The zero state (``RSTG.initial_state``)."""
        return self.block.initial_state(batch_size, dtype=dtype)

    def step(self, frame, state) -> Tuple[object, Dict[str, object]]:
        """frame [B, H, W, C] (the model's input dtype), state -> (logits [B, classes],
        new state), in inference mode."""
        x = frame[:, None]
        for layer in self.per_frame:
            x = layer(x, training=False)
        pooled, new_state = self.block.step(x[:, 0], state, training=False)
        for layer in self.head:
            pooled = layer(pooled, training=False)
        return ops.cast(pooled, "float32"), new_state
