"""What a SavedModel for TF Serving holds: a ``tf.Module`` with three signatures.

  serving_default  {video: uint8 [batch, T, H, W, C]}
                   -> {probabilities [batch, classes], top_k_classes int32 [batch, k],
                       top_k_scores [batch, k], (class_names string [batch, k])}
  stream_init      {batch: int32 []} -> the zero state tensors (RSTG models)
  stream_step      {frame: uint8 [batch, H, W, C], <state>...}
                   -> {probabilities, top_k_classes, top_k_scores, <new state>...}

The streaming pair is the model's online mode (``rstg_tf.models.streaming``: the model's
own layers frame by frame, ``RSTG.step`` for the block) with the state passed in and out
explicitly, so the server stays stateless (the MoViNet export's convention). After T steps
the probabilities equal ``serving_default`` on the clip. Inputs are checked in the graph:
dtype, rank and sizes by the signature; an empty batch, and a state whose batch is not the
frame's, by assertions with a clear message (TF Serving users get them too).
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import keras
import tensorflow as tf

from rstg_tf.models import ModelConfig
from rstg_tf.models.streaming import StreamingClassifier


def _check_batch(x: tf.Tensor, name: str) -> tf.Tensor:
    assertion = tf.debugging.assert_positive(
        tf.shape(x)[0], message=f"'{name}' has an empty batch; send at least one clip")
    with tf.control_dependencies([assertion]):
        return tf.identity(x)


class ServingModule(tf.Module):
    """Signatures of a trained clip classifier.

    Args:
      model: a model from ``rstg_tf.models.build_model``.
      config: its ``ModelConfig``.
      class_names: optional names, one per class (adds a ``class_names`` output).
      top_k: how many top classes to return.
    """

    def __init__(self, model: keras.Model, config: ModelConfig,
                 class_names: Optional[Sequence[str]] = None, top_k: int = 5):
        super().__init__(name="rstg_serving")
        if class_names is not None and len(class_names) != config.num_classes:
            raise ValueError(f"{len(class_names)} class names for {config.num_classes} "
                             "classes.")
        self.model, self.config = model, config
        # Keras 3 keeps some weights in structures TF's tracking does not walk: track every
        # variable explicitly (as keras.export.ExportArchive does).
        self.model_variables = list(model.variables)
        self.top_k = min(top_k, config.num_classes)
        self.class_names = (tf.constant(list(class_names)) if class_names is not None
                            else None)
        self.stream = None
        if config.name == "rstg" and config.rstg.has_time_recurrence and \
                config.rstg.readout in ("mean_time", "last_step"):
            self.stream = StreamingClassifier(model)
        c = config
        self.video_spec = tf.TensorSpec([None, c.num_frames, *c.frame_size, c.channels],
                                        tf.uint8, name="video")
        self.frame_spec = tf.TensorSpec([None, *c.frame_size, c.channels], tf.uint8,
                                        name="frame")

    @property
    def streams(self) -> bool:
        return self.stream is not None

    def _outputs(self, logits: tf.Tensor) -> Dict[str, tf.Tensor]:
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        scores, classes = tf.math.top_k(probabilities, k=self.top_k)
        outputs = {"probabilities": probabilities, "top_k_classes": tf.cast(classes, tf.int32),
                   "top_k_scores": scores}
        if self.class_names is not None:
            outputs["class_names"] = tf.gather(self.class_names, classes)
        return outputs

    def serve(self, video: tf.Tensor) -> Dict[str, tf.Tensor]:
        return self._outputs(self.model(_check_batch(video, "video"), training=False))

    def state_specs(self) -> Dict[str, tf.TensorSpec]:
        zeros = self.stream.initial_state(1, dtype="float32")
        return {k: tf.TensorSpec([None, *v.shape[1:]], tf.float32, name=k)
                for k, v in zeros.items()}

    def stream_init(self, batch: tf.Tensor) -> Dict[str, tf.Tensor]:
        assertion = tf.debugging.assert_positive(
            batch, message="'batch' must be a positive number of streams")
        with tf.control_dependencies([assertion]):
            return {k: tf.cast(v, tf.float32)
                    for k, v in self.stream.initial_state(batch, dtype="float32").items()}

    def stream_step(self, inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        frame = _check_batch(inputs["frame"], "frame")
        # a state of another batch would broadcast or fail deep in the graph: refuse it here
        checks = [tf.debugging.assert_equal(
            tf.shape(inputs[k])[0], tf.shape(frame)[0],
            message=f"state '{k}' and 'frame' differ in batch size (state vs frame)")
            for k in self.state_specs()]
        with tf.control_dependencies(checks):
            state = {k: tf.cast(inputs[k], self.stream.block.compute_dtype)
                     for k in self.state_specs()}
        logits, new_state = self.stream.step(frame, state)
        outputs = self._outputs(logits)
        outputs.update({k: tf.cast(v, tf.float32) for k, v in new_state.items()})
        return outputs

    def signatures(self) -> Dict[str, tf.types.experimental.ConcreteFunction]:
        """Concrete functions for ``tf.saved_model.save(..., signatures=...)``."""
        signatures = {"serving_default": tf.function(self.serve).get_concrete_function(
            self.video_spec)}
        if self.streams:
            signatures["stream_init"] = tf.function(self.stream_init).get_concrete_function(
                tf.TensorSpec([], tf.int32, name="batch"))
            signatures["stream_step"] = tf.function(self.stream_step).get_concrete_function(
                {"frame": self.frame_spec, **self.state_specs()})
        return signatures
