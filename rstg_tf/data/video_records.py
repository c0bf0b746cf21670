"""Video clips as ``tf.train.SequenceExample`` records, with TF Model Garden's keys.

Generic over data sets: a ``VideoRecordSpec`` names the keys, the frame count and size, and
any extra integer features; SyncMNIST's own fields live in ``syncmnist_records``.

Record layout:
  context       ``clip/label/index`` int64, ``clip/media_id`` bytes, extra int64 lists
  feature_list  ``image/encoded`` one PNG per frame, extra per-frame int64 lists
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Mapping, Tuple

import cv2
import numpy as np
import tensorflow as tf

IMAGE_KEY = "image/encoded"
LABEL_KEY = "clip/label/index"
MEDIA_ID_KEY = "clip/media_id"


@dataclasses.dataclass(frozen=True)
class VideoRecordSpec:
    """What a video record holds.

    Attributes:
      num_frames, height, width, channels: decoded clip shape [T, H, W, C].
      context_ints: (key, length) of extra fixed-length int64 context features.
      sequence_ints: (key, length) of extra per-frame int64 features.
    """

    num_frames: int
    height: int
    width: int
    channels: int = 1
    context_ints: Tuple[Tuple[str, int], ...] = ()
    sequence_ints: Tuple[Tuple[str, int], ...] = ()
    image_key: str = IMAGE_KEY
    label_key: str = LABEL_KEY
    media_id_key: str = MEDIA_ID_KEY

    @property
    def frame_shape(self) -> Tuple[int, int, int]:
        return (self.height, self.width, self.channels)


def _ints(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def encode_png(frame: np.ndarray) -> bytes:
    """Lossless PNG of a uint8 [H, W] or [H, W, C] (C = 1 or 3, RGB) frame."""
    if frame.ndim == 3 and frame.shape[-1] == 3:
        frame = frame[..., ::-1]  # OpenCV writes BGR
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(frame))
    if not ok:
        raise ValueError(f"could not PNG-encode a frame of shape {frame.shape}.")
    return buffer.tobytes()


def encode_video(spec: VideoRecordSpec, frames: np.ndarray, label: int, media_id: str,
                 context_ints: Mapping[str, np.ndarray] = None,
                 sequence_ints: Mapping[str, np.ndarray] = None) -> bytes:
    """Serialises one clip.

    Args:
      spec: the record spec.
      frames: uint8 [T, H, W] or [T, H, W, C] matching the spec.
      label: class index.
      media_id: a unique name of the clip.
      context_ints: key -> int array of the spec's length.
      sequence_ints: key -> int array [T, length].

    Returns:
      The serialized ``tf.train.SequenceExample``.
    """
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.dtype != np.uint8 or frames.shape != (spec.num_frames,) + spec.frame_shape:
        raise ValueError(f"frames must be uint8 {(spec.num_frames,) + spec.frame_shape}; got "
                         f"{frames.dtype} {frames.shape}.")
    context_ints, sequence_ints = dict(context_ints or {}), dict(sequence_ints or {})
    context = {spec.label_key: _ints([label]), spec.media_id_key: _bytes(media_id.encode())}
    for key, length in spec.context_ints:
        values = np.asarray(context_ints.pop(key)).reshape(-1)
        if values.shape != (length,):
            raise ValueError(f"context feature {key!r} must have {length} values; got "
                             f"{values.shape[0]}.")
        context[key] = _ints(values)
    lists = {spec.image_key: tf.train.FeatureList(
        feature=[_bytes(encode_png(f if spec.channels > 1 else f[..., 0])) for f in frames])}
    for key, length in spec.sequence_ints:
        values = np.asarray(sequence_ints.pop(key)).reshape(spec.num_frames, -1)
        if values.shape[1] != length:
            raise ValueError(f"sequence feature {key!r} must have {length} values per frame; "
                             f"got {values.shape[1]}.")
        lists[key] = tf.train.FeatureList(feature=[_ints(row) for row in values])
    unknown = sorted(set(context_ints) | set(sequence_ints))
    if unknown:
        raise ValueError(f"features {unknown} are not in the record spec.")
    example = tf.train.SequenceExample(
        context=tf.train.Features(feature=context),
        feature_lists=tf.train.FeatureLists(feature_list=lists))
    return example.SerializeToString(deterministic=True)  # map keys sorted: same bytes in
    # every process (Python string hashing differs between processes)


def parse_video(spec: VideoRecordSpec, serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Parses and decodes one serialized clip (graph-safe, for ``Dataset.map``).

    Returns:
      dict with ``frames`` uint8 [T, H, W, C], ``label`` int64 [], ``media_id`` string [],
      and every extra feature under its key (context [length], sequence [T, length]).
    """
    context_features = {spec.label_key: tf.io.FixedLenFeature([], tf.int64),
                        spec.media_id_key: tf.io.FixedLenFeature([], tf.string)}
    for key, length in spec.context_ints:
        context_features[key] = tf.io.FixedLenFeature([length], tf.int64)
    sequence_features = {spec.image_key: tf.io.FixedLenSequenceFeature([], tf.string)}
    for key, length in spec.sequence_ints:
        sequence_features[key] = tf.io.FixedLenSequenceFeature([length], tf.int64)
    context, sequence = tf.io.parse_single_sequence_example(
        serialized, context_features=context_features, sequence_features=sequence_features)
    encoded = sequence[spec.image_key]
    with tf.control_dependencies([tf.debugging.assert_equal(
            tf.shape(encoded)[0], spec.num_frames,
            message=f"a record does not hold {spec.num_frames} '{spec.image_key}' frames")]):
        encoded = tf.identity(encoded)
    frames = tf.stack([tf.io.decode_png(png, channels=spec.channels, dtype=tf.uint8)
                       for png in tf.unstack(encoded, num=spec.num_frames)])
    frames = tf.ensure_shape(frames, (spec.num_frames,) + spec.frame_shape)
    parsed = {"frames": frames, "label": context[spec.label_key],
              "media_id": context[spec.media_id_key]}
    for key, _ in spec.context_ints:
        parsed[key] = context[key]
    for key, length in spec.sequence_ints:
        parsed[key] = tf.ensure_shape(sequence[key], (spec.num_frames, length))
    return parsed
