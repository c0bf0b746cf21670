"""tf.data clips from Something-Something records (``smth``): variable-length videos.

Every step is a TF op (no ``py_function``), mapped in parallel. Per video of N frames:

  train  ``num_frames`` (T) indices, one per equal segment of the video at a random offset
         shared by all segments (``sample_indices``); only those JPEGs are decoded; resize
         so the shorter side is ``short_side`` (bilinear); one random ``crop_size`` square,
         the same for every frame; optional horizontal flip (off: SSv1 labels say left /
         right); normalise (x - 114.75) / 57.375 -> float32 [T, crop, crop, 3].
  eval   the segments' centres, the centre crop.
  dense  2 samplings (offsets 1/4 and 3/4 of a segment) x 11 ``dense_crop_size`` squares
         spread evenly over the resized frame (``crop_offsets``) = 22 clips per video,
         each with the video's label and media id; ``average_per_video`` averages their
         logits and ``evaluate_dense`` scores a model so.

A video shorter than T frames repeats frames. The reference (IuliaDuta/RSTG) samples
``linspace(0, N - 1, T)`` and, for its second sampling, the same shifted by half a
segment; the segment offsets here are the symmetric form of that.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from rstg_tf.data import pipeline, shards, smth
from rstg_tf.data.video_records import IMAGE_KEY, LABEL_KEY, MEDIA_ID_KEY
from rstg_tf.metrics import top_k_accuracy

AUTOTUNE = tf.data.AUTOTUNE
MEAN, STD = 114.75, 57.375
MODES = ("train", "eval", "dense")


@dataclasses.dataclass(frozen=True)
class ClipConfig:
    """Clip geometry. Defaults: the paper's SSv1 settings (32 x 224 x 224, dense 22 x 256)."""

    num_frames: int = 32
    short_side: int = 256
    crop_size: int = 224
    dense_crop_size: Optional[int] = None   # default: short_side
    dense_crops: int = 11
    dense_offsets: Tuple[float, ...] = (0.25, 0.75)
    flip: bool = False

    def __post_init__(self):
        if min(self.num_frames, self.short_side, self.crop_size, self.dense_crops) < 1:
            raise ValueError(f"clip sizes must be positive; got {self}.")
        if max(self.crop_size, self.dense_size) > self.short_side:
            raise ValueError(f"crop sizes ({self.crop_size}, {self.dense_size}) must not "
                             f"exceed the short side {self.short_side}.")
        if not self.dense_offsets or not all(0 <= o < 1 for o in self.dense_offsets):
            raise ValueError(f"dense_offsets must be fractions in [0, 1); got "
                             f"{self.dense_offsets}.")

    @property
    def dense_size(self) -> int:
        return self.dense_crop_size or self.short_side

    @property
    def clips_per_video(self) -> int:
        return len(self.dense_offsets) * self.dense_crops


# ---------------------------------------------------------------------------------------
# Geometry (pure functions of sizes; Python ints or scalar tensors in, int32 tensors out).

def _uniform(shape, seed, minval=0.0, maxval=1.0, dtype=tf.float32):
    if seed is None:
        return tf.random.uniform(shape, minval, maxval, dtype=dtype)
    return tf.random.stateless_uniform(shape, seed, minval, maxval, dtype=dtype)


def sample_indices(num_video_frames, num_frames: int, mode: str = "eval", offset=None,
                   seed=None, dense_offsets: Sequence[float] = (0.25, 0.75)) -> tf.Tensor:
    """Frame indices: frame ``floor((i + offset) * N / T)`` for segment i of T.

    Args:
      num_video_frames: N >= 1, frames in the video.
      num_frames: T, frames in the clip.
      mode: 'train' (random offset, one for all segments), 'eval' (offset 0.5, the
        segments' centres) or 'dense' (one row per ``dense_offsets`` entry).
      offset: a fraction of a segment in [0, 1) to use instead of the mode's.
      seed: [2] int seed of the train offset (stateless); None: tf.random.

    Returns:
      int32 [T] (train, eval) or [len(dense_offsets), T] (dense), values in [0, N - 1],
      non-decreasing; N < T repeats frames.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}.")
    if offset is None:
        offset = {"train": lambda: _uniform([], seed),
                  "eval": lambda: 0.5, "dense": lambda: list(dense_offsets)}[mode]()
    offset = tf.cast(offset, tf.float64)[..., None]
    n = tf.cast(num_video_frames, tf.float64)
    steps = tf.range(num_frames, dtype=tf.float64)
    indices = tf.cast(tf.floor((steps + offset) * n / num_frames), tf.int32)
    return tf.clip_by_value(indices, 0, tf.cast(num_video_frames, tf.int32) - 1)


def resized_shape(height, width, short_side: int) -> Tuple[tf.Tensor, tf.Tensor]:
    """(height, width) with the shorter side ``short_side``, the longer floor-scaled."""
    height, width = tf.cast(height, tf.int64), tf.cast(width, tf.int64)
    short, side = tf.minimum(height, width), tf.constant(short_side, tf.int64)
    new_h = tf.where(height == short, side, height * side // short)
    new_w = tf.where(height == short, width * side // short, side)
    return tf.cast(new_h, tf.int32), tf.cast(new_w, tf.int32)


def crop_offsets(height, width, crop_size: int, mode: str = "eval", num_crops: int = 11,
                 seed=None) -> tf.Tensor:
    """Top-left corners (y, x) of square crops of a ``height x width`` frame.

    'train': one uniform corner in [0, H - crop] x [0, W - crop] (stateless with ``seed``);
    'eval': the centre ((H - crop) // 2, (W - crop) // 2); 'dense': ``num_crops`` corners
    ``floor(linspace(0, H - crop))`` x ``floor(linspace(0, W - crop))`` paired in order, so
    for a frame ``crop`` high they run from x = 0 to the right edge (all equal when the
    frame is ``crop`` wide).

    Returns:
      int32 [1, 2] (train, eval) or [num_crops, 2] (dense).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}.")
    room = tf.stack([tf.cast(height, tf.int32), tf.cast(width, tf.int32)]) - crop_size
    checks = [tf.debugging.assert_non_negative(
        room, message=f"a frame is smaller than the {crop_size}x{crop_size} crop")]
    with tf.control_dependencies(checks):
        room = tf.identity(room)
    if mode == "train":
        corner = tf.floor(_uniform([2], seed) * tf.cast(room + 1, tf.float32))
        return tf.minimum(tf.cast(corner, tf.int32), room)[None]
    if mode == "eval":
        return (room // 2)[None]
    steps = tf.range(num_crops, dtype=tf.int32)[:, None]
    return steps * room[None] // max(num_crops - 1, 1)   # floor(linspace), exactly


# ---------------------------------------------------------------------------------------
# Per-record ops.

def parse_record(serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
    """``encoded`` string [N], ``num_frames`` int32, ``label`` int32, ``media_id`` string."""
    context, sequence = tf.io.parse_single_sequence_example(
        serialized,
        context_features={LABEL_KEY: tf.io.FixedLenFeature([], tf.int64, default_value=-1),
                          MEDIA_ID_KEY: tf.io.FixedLenFeature([], tf.string)},
        sequence_features={IMAGE_KEY: tf.io.FixedLenSequenceFeature([], tf.string)})
    encoded = sequence[IMAGE_KEY]
    return {"encoded": encoded, "num_frames": tf.shape(encoded)[0],
            "label": tf.cast(context[LABEL_KEY], tf.int32),
            "media_id": context[MEDIA_ID_KEY]}


def decode_frames(encoded: tf.Tensor, indices: tf.Tensor) -> tf.Tensor:
    """uint8 [K, H, W, 3] of the JPEGs at ``indices`` [K] (each distinct one decoded once)."""
    unique, position = tf.unique(tf.reshape(indices, [-1]))
    images = tf.map_fn(lambda jpeg: tf.io.decode_jpeg(jpeg, channels=3),
                       tf.gather(encoded, unique),
                       fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))
    return tf.gather(images, position)


def resize_short_side(frames: tf.Tensor, short_side: int) -> tf.Tensor:
    """float32 [K, H', W', 3]: ``frames`` [K, H, W, 3] bilinearly resized, shorter side
    ``short_side``."""
    shape = tf.shape(frames)
    size = tf.stack(resized_shape(shape[1], shape[2], short_side))
    return tf.image.resize(frames, size, method="bilinear")


def normalize(frames: tf.Tensor) -> tf.Tensor:
    return (tf.cast(frames, tf.float32) - MEAN) / STD


def _crop(frames: tf.Tensor, corner: tf.Tensor, size: int) -> tf.Tensor:
    return tf.slice(frames, tf.stack([0, corner[0], corner[1], 0]), [-1, size, size, 3])


def _clip_fn(mode: str, config: ClipConfig):
    """record (, seed [2]) -> (clip float32 [T, crop, crop, 3], label int32, media_id)."""
    size = config.crop_size

    def fn(serialized, seed=None):
        video = parse_record(serialized)
        seeds = [None] * 3 if seed is None else tf.unstack(
            tf.random.experimental.stateless_split(seed, 3))
        indices = sample_indices(video["num_frames"], config.num_frames, mode, seed=seeds[0])
        frames = resize_short_side(decode_frames(video["encoded"], indices), config.short_side)
        shape = tf.shape(frames)
        corner = crop_offsets(shape[1], shape[2], size, mode, seed=seeds[1])[0]
        clip = _crop(frames, corner, size)
        if config.flip and mode == "train":
            coin = _uniform([], seeds[2]) < 0.5
            clip = tf.cond(coin, lambda: tf.reverse(clip, [2]), lambda: clip)
        clip = tf.ensure_shape(normalize(clip), (config.num_frames, size, size, 3))
        return clip, video["label"], video["media_id"]

    return fn


def _dense_fn(config: ClipConfig):
    """record -> a dataset of the video's 22 (clip, label, media_id), sampling-major."""
    t, size, crops = config.num_frames, config.dense_size, config.dense_crops

    def frames_of(serialized):
        video = parse_record(serialized)
        indices = sample_indices(video["num_frames"], t, "dense",
                                 dense_offsets=config.dense_offsets)
        frames = resize_short_side(decode_frames(video["encoded"], indices), config.short_side)
        shape = tf.shape(frames)
        corners = crop_offsets(shape[1], shape[2], size, "dense", crops)
        return frames, corners, video["label"], video["media_id"]

    def clips_of(frames, corners, label, media_id):
        def clip(k):
            k = tf.cast(k, tf.int32)
            sampling = tf.slice(frames, [k // crops * t, 0, 0, 0], [t, -1, -1, -1])
            clip = _crop(sampling, corners[k % crops], size)
            return tf.ensure_shape(normalize(clip), (t, size, size, 3)), label, media_id

        return tf.data.Dataset.range(config.clips_per_video).map(clip)

    return frames_of, clips_of


# ---------------------------------------------------------------------------------------
# Datasets.

def split_files(data_dir: str, split: str):
    """Shard paths, record counts and manifest entry of a converted SSv1 split."""
    if os.path.isdir(data_dir) and not shards.read_manifest(data_dir):
        raise FileNotFoundError(
            f"{data_dir} has no {shards.MANIFEST}; convert the data first (python -m "
            f"train.convert_smth --output_dir={data_dir} ...).")
    files, counts, entry = pipeline.split_files(data_dir, split)
    if entry.get("settings", {}).get("dataset") != smth.DATASET:
        raise ValueError(f"the '{split}' split in {data_dir} is not {smth.DATASET} data.")
    if not entry.get("num_videos"):
        raise ValueError(f"the '{split}' split in {data_dir} holds no videos (all "
                         f"{entry.get('num_listed')} were skipped; see {shards.MANIFEST}).")
    return files, counts, entry


def clip_dataset(data_dir: str, split: str, *, batch_size: Optional[int], mode: str = "train",
                 config: ClipConfig = ClipConfig(), seed: Optional[int] = None,
                 deterministic: Optional[bool] = None, repeat: bool = False,
                 shuffle_buffer: int = 256, on_corrupt: str = "raise",
                 with_ids: bool = False, cycle_length: int = 8,
                 drop_remainder: Optional[bool] = None,
                 autotune: bool = False) -> tf.data.Dataset:
    """Clips of a converted split.

    Args:
      data_dir, split: the converter's output directory and split name.
      batch_size: clips per batch, or None for single clips.
      mode: 'train' (shuffled, random sampling and crop), 'eval' (centre) or 'dense'
        (``config.clips_per_video`` clips per video, in order).
      config: clip geometry.
      seed: seeds the shuffles and the augmentation (then the order and clips are fixed).
      deterministic: keep element order (default: not training, or a seed is given).
      repeat: repeat forever (train).
      shuffle_buffer: videos in the shuffle buffer (train).
      on_corrupt: 'raise' (error naming the shard) or 'skip' (``pipeline.video_dataset``).
      with_ids: also yield media ids (always in dense mode).
      cycle_length: shards read at once.
      drop_remainder: default: train.
      autotune: tf.data's autotuning model (``pipeline.video_dataset``).

    Returns:
      Batches ``(clips float32 [B, T, S, S, 3], labels int32 [B])`` (S: ``crop_size``,
      dense: ``dense_size``), plus ``media_ids`` string [B] with ids or in dense mode.
      Unlabelled (test) videos have label -1.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}.")
    if on_corrupt not in pipeline.ON_CORRUPT:
        raise ValueError(f"on_corrupt must be one of {pipeline.ON_CORRUPT}; got "
                         f"{on_corrupt!r}.")
    files, counts, _ = split_files(data_dir, split)
    training = mode == "train"
    deterministic = (not training or seed is not None) if deterministic is None \
        else deterministic
    compression = pipeline._compression_of(files[0])
    sources = tf.data.Dataset.from_tensor_slices((files, tf.constant(counts, tf.int64)))
    if training:
        sources = sources.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    data = sources.interleave(
        lambda path, count: pipeline._checked_records(path, count, compression, on_corrupt,
                                                      None),
        cycle_length=min(cycle_length, len(files)), num_parallel_calls=AUTOTUNE,
        deterministic=deterministic).map(lambda record, unused_count: record)
    if training:
        data = data.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        data = data.repeat()
    if mode == "dense":
        frames_of, clips_of = _dense_fn(config)
        data = data.map(frames_of, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
        data = data.flat_map(clips_of)
    elif training:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        data = tf.data.Dataset.zip((data, seeds)).map(
            _clip_fn(mode, config), num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    else:
        data = data.map(_clip_fn(mode, config), num_parallel_calls=AUTOTUNE,
                        deterministic=deterministic)
    if on_corrupt == "skip":
        data = data.ignore_errors(log_warning=True)
    if not (with_ids or mode == "dense"):
        data = data.map(lambda clip, label, media_id: (clip, label))
    if batch_size:
        data = data.batch(batch_size, drop_remainder=training if drop_remainder is None
                          else drop_remainder)
    return data.prefetch(AUTOTUNE).with_options(pipeline._options(autotune))


# ---------------------------------------------------------------------------------------
# Dense evaluation.

def average_per_video(logits, video_ids) -> Tuple[np.ndarray, np.ndarray]:
    """Mean logits per video, videos in order of first appearance.

    Args:
      logits: float [M, C], one row per clip.
      video_ids: [M] ids (str or bytes) of the clips' videos.

    Returns:
      (ids [V], mean logits float [V, C]).
    """
    logits = np.asarray(logits, np.float64)
    video_ids = np.asarray(video_ids)
    if logits.ndim != 2 or len(logits) != len(video_ids):
        raise ValueError(f"need logits [M, C] and M ids; got {logits.shape} and "
                         f"{video_ids.shape}.")
    ids, first, inverse = np.unique(video_ids, return_index=True, return_inverse=True)
    sums = np.zeros((len(ids), logits.shape[1]))
    np.add.at(sums, inverse.reshape(-1), logits)
    means = sums / np.bincount(inverse.reshape(-1), minlength=len(ids))[:, None]
    order = np.argsort(first)
    return ids[order], means[order]


def evaluate_dense(model: Callable, dataset: tf.data.Dataset) -> dict:
    """Top-1 / top-5 of per-video averaged logits over a dense ``clip_dataset``.

    Args:
      model: a Keras model (``predict_on_batch``) or any callable, clips -> logits [B, C].
      dataset: batches ``(clips, labels, media_ids)``.

    Returns:
      dict: ``top1``, ``top5`` (None without labelled videos), ``num_videos``,
      ``num_clips``, and ``video_ids`` [V], ``logits`` [V, C], ``labels`` [V].
    """
    predict = getattr(model, "predict_on_batch", model)
    logits, labels, ids = [], [], []
    for clips, batch_labels, batch_ids in dataset:
        logits.append(np.asarray(predict(clips)))
        labels.append(batch_labels.numpy())
        ids.append(batch_ids.numpy())
    if not logits:
        raise ValueError("the dataset is empty.")
    ids, labels = np.concatenate(ids), np.concatenate(labels)
    video_ids, means = average_per_video(np.concatenate(logits), ids)
    label_of = dict(zip(ids.tolist(), labels.tolist()))
    video_labels = np.array([label_of[v] for v in video_ids.tolist()], np.int64)
    known = video_labels >= 0
    scores = {f"top{k}": (top_k_accuracy(means[known], video_labels[known], k)
                          if known.any() else None) for k in (1, 5)}
    return {**scores, "num_videos": len(video_ids), "num_clips": len(ids),
            "video_ids": video_ids, "logits": means, "labels": video_labels}
