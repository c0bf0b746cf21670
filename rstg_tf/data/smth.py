"""Something-Something-v1 (SSv1) as TFRecord shards of the original JPEG frames.

SSv1 layout (20BN's release):
  labels CSV   one class name per line; class index = line order (174 lines)
  split CSV    ``video_id;label name`` per line (the test split: ``video_id`` only)
  frames dir   ``<frames_dir>/<video_id>/00001.jpg, 00002.jpg, ...`` (numbered JPEGs)

Record (``tf.train.SequenceExample``, Model Garden keys, variable frame count):
  context       ``clip/label/index`` int64 (-1: unlabelled), ``clip/label/string`` bytes,
                ``clip/media_id`` bytes (the video id)
  feature_list  ``image/encoded``: the source JPEG bytes of every frame, in order

A video that cannot be read (missing folder or file, unknown label, no frames, a corrupt or
truncated JPEG) is skipped and listed with its reason in ``manifest.json``; shards are
written by ``shards`` (atomic, resumable, spawned workers). ``convert_split`` writes one
split; ``frame_entries`` / ``video_file_entries`` list the videos of either source.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import math
import os
import re
import time
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
import tensorflow as tf

from rstg_tf.data import shards
from rstg_tf.data.video_records import IMAGE_KEY, LABEL_KEY, MEDIA_ID_KEY, _bytes, _ints

LABEL_STRING_KEY = "clip/label/string"
DATASET = "something-something-v1"
RECORD_FORMAT = "smth-jpeg-v1"
NUM_CLASSES = 174
SPLITS = ("train", "validation", "test")
DEFAULT_SHARD_SIZE = 500
JPEG_SUFFIXES = (".jpg", ".jpeg")
VIDEO_SUFFIXES = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v")
SOURCES = ("frames", "videos")


class SkipVideo(Exception):
    """A video that is left out of the shards; ``str(e)`` is the reason."""


@dataclasses.dataclass(frozen=True)
class VideoEntry:
    """One listed video: media id, label name (None: unlabelled) and where it is read."""

    video_id: str
    label: Optional[str]
    source: str


# ---------------------------------------------------------------------------------------
# The SSv1 layout.

def _lines(path: str) -> List[Tuple[int, str]]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist.")
    with open(path, encoding="utf-8-sig") as f:
        return [(n, line.strip()) for n, line in enumerate(f, 1) if line.strip()]


def read_labels(path: str) -> List[str]:
    """Class names of a labels CSV, one a line; index = line order (blank lines ignored)."""
    names = [line for _, line in _lines(path)]
    if not names:
        raise ValueError(f"labels CSV {path} holds no class names.")
    seen = set()
    for name in names:
        if name in seen:
            raise ValueError(f"labels CSV {path} lists the class {name!r} twice.")
        seen.add(name)
    return names


def read_split(path: str, labelled: bool = True) -> List[Tuple[str, Optional[str]]]:
    """``(video_id, label name or None)`` of a split CSV (``id;label`` or ``id`` lines).

    Raises ValueError naming the line for a duplicate id, an empty id, or (``labelled``) a
    line without a label.
    """
    rows, seen = [], set()
    for number, line in _lines(path):
        video_id, _, label = (part.strip() for part in line.partition(";"))
        if not video_id:
            raise ValueError(f"{path}:{number}: empty video id.")
        if video_id in seen:
            raise ValueError(f"{path}:{number}: video {video_id!r} is listed twice.")
        if labelled and not label:
            raise ValueError(f"{path}:{number}: no label (expected 'id;label name').")
        seen.add(video_id)
        rows.append((video_id, label or None))
    if not rows:
        raise ValueError(f"split CSV {path} lists no videos.")
    return rows


def frame_files(folder: str) -> List[str]:
    """The JPEG files of a frames folder, sorted by frame number (``00002`` < ``00010``)."""
    names = [n for n in os.listdir(folder) if n.lower().endswith(JPEG_SUFFIXES)]

    def key(name):
        digits = re.findall(r"\d+", name)
        return (int(digits[-1]) if digits else math.inf, name)

    return [os.path.join(folder, n) for n in sorted(names, key=key)]


def frame_entries(frames_dir: str, split_csv: str, labelled: bool = True) -> List[VideoEntry]:
    """The videos a split CSV lists, read from ``frames_dir/<video_id>/``."""
    if not os.path.isdir(frames_dir):
        raise FileNotFoundError(f"frames directory {frames_dir} does not exist.")
    return [VideoEntry(video_id, label, os.path.join(frames_dir, video_id))
            for video_id, label in read_split(split_csv, labelled)]


def video_file_entries(videos_dir: str, split_csv: Optional[str] = None,
                       labelled: bool = True) -> List[VideoEntry]:
    """Video files: ``split_csv`` lines ``file;label`` (relative to ``videos_dir``), or
    without it every ``videos_dir/<label name>/<video>`` file. Media id: the relative
    path without its extension."""
    if not os.path.isdir(videos_dir):
        raise FileNotFoundError(f"videos directory {videos_dir} does not exist.")
    if split_csv:
        rows = read_split(split_csv, labelled)
    else:
        rows = [(os.path.relpath(path, videos_dir), os.path.basename(os.path.dirname(path)))
                for path in sorted(glob.glob(os.path.join(videos_dir, "*", "*")))
                if path.lower().endswith(VIDEO_SUFFIXES)]
        if not rows:
            raise ValueError(f"{videos_dir} holds no <label name>/<video> files "
                             f"({', '.join(VIDEO_SUFFIXES)}).")
    return [VideoEntry(os.path.splitext(name)[0], label, os.path.join(videos_dir, name))
            for name, label in rows]


def hold_out(entries: Sequence[VideoEntry], num_videos: int, seed: int = 0
             ) -> Tuple[List[VideoEntry], List[VideoEntry]]:
    """(rest, held out): ``num_videos`` entries drawn at random (seeded), both in listing
    order; e.g. a validation split carved out of the training videos."""
    if not 0 < num_videos < len(entries):
        raise ValueError(f"the videos held out ({num_videos}) must be between 1 and the "
                         f"{len(entries)} listed, less one.")
    chosen = set(np.random.default_rng(seed).choice(len(entries), num_videos,
                                                    replace=False).tolist())
    return ([e for i, e in enumerate(entries) if i not in chosen],
            [e for i, e in enumerate(entries) if i in chosen])


# ---------------------------------------------------------------------------------------
# Reading one video's JPEGs (raises SkipVideo with the reason).

def check_jpeg(data: bytes) -> Tuple[Optional[str], Tuple[int, ...]]:
    """(None, decoded shape) for a JPEG that decodes, else ('corrupt' or 'truncated', ())."""
    image = None
    if data.startswith(b"\xff\xd8"):
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        return "corrupt", ()
    if b"\xff\xd9" not in data[-64:]:  # some OpenCV builds fill a truncated image in
        return "truncated", ()        # grey; tf.io.decode_jpeg refuses it
    return None, image.shape


def read_frame_folder(folder: str) -> List[bytes]:
    """The JPEG bytes of a frames folder, unchanged, checked to decode."""
    if not os.path.isdir(folder):
        raise SkipVideo("missing frames folder")
    paths = frame_files(folder)
    if not paths:
        raise SkipVideo("no JPEG frames")
    jpegs, first = [], None
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        problem, shape = check_jpeg(data)
        if problem:
            raise SkipVideo(f"{problem} JPEG {os.path.basename(path)}")
        first = first or shape
        if shape != first:   # the pipeline decodes a clip's frames into one tensor
            raise SkipVideo(f"frame sizes differ ({os.path.basename(path)} is "
                            f"{shape[1]}x{shape[0]}, the first {first[1]}x{first[0]})")
        jpegs.append(data)
    return jpegs


def read_video_file(path: str, quality: int = 90) -> List[bytes]:
    """Every frame of a video file (cv2.VideoCapture), JPEG-encoded at ``quality``."""
    if not os.path.isfile(path):
        raise SkipVideo("missing video file")
    capture = cv2.VideoCapture(path)
    jpegs = []
    try:
        if not capture.isOpened():
            raise SkipVideo("unreadable video")
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            ok, buffer = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if not ok:
                raise SkipVideo(f"frame {len(jpegs)} could not be JPEG-encoded")
            jpegs.append(buffer.tobytes())
    finally:
        capture.release()
    if not jpegs:
        raise SkipVideo("unreadable video (no frames decoded)")
    return jpegs


def encode_smth_video(jpeg_bytes_list: Sequence[bytes], label_index: int, label_string: str,
                      media_id: str) -> bytes:
    """Serialises one video's JPEGs (any count >= 1) as a SequenceExample (deterministic)."""
    if not jpeg_bytes_list:
        raise ValueError(f"video {media_id!r} has no frames.")
    context = {LABEL_KEY: _ints([label_index]),
               LABEL_STRING_KEY: _bytes(label_string.encode()),
               MEDIA_ID_KEY: _bytes(media_id.encode())}
    frames = tf.train.FeatureList(feature=[_bytes(bytes(j)) for j in jpeg_bytes_list])
    example = tf.train.SequenceExample(
        context=tf.train.Features(feature=context),
        feature_lists=tf.train.FeatureLists(feature_list={IMAGE_KEY: frames}))
    return example.SerializeToString(deterministic=True)


# ---------------------------------------------------------------------------------------
# Shards.

@dataclasses.dataclass(frozen=True)
class VideoShardTask(shards.ShardTask):
    """A shard and the videos it holds (each task carries only its own entries)."""

    entries: Tuple[VideoEntry, ...] = ()


@dataclasses.dataclass(frozen=True)
class ShardJob:
    """Writes one shard (picklable, for spawned workers)."""

    label_names: Tuple[str, ...]
    source: str = "frames"
    compression: str = "NONE"
    jpeg_quality: int = 90

    def jpegs(self, entry: VideoEntry) -> List[bytes]:
        if self.source == "frames":
            return read_frame_folder(entry.source)
        return read_video_file(entry.source, self.jpeg_quality)

    def __call__(self, task: VideoShardTask, report) -> dict:
        index_of = {name: i for i, name in enumerate(self.label_names)}
        histogram = np.zeros(len(self.label_names), np.int64)
        kept, skipped = [0], []

        def records():
            for entry in task.entries:
                try:
                    if entry.label is not None and entry.label not in index_of:
                        raise SkipVideo(f"unknown label {entry.label!r}")
                    jpegs = self.jpegs(entry)
                except SkipVideo as e:
                    skipped.append({"video_id": entry.video_id, "reason": str(e)})
                else:
                    label = -1 if entry.label is None else index_of[entry.label]
                    if label >= 0:
                        histogram[label] += 1
                    kept[0] += 1
                    yield encode_smth_video(jpegs, label, entry.label or "", entry.video_id)
                report(1)

        tmp = shards.write_records(shards.temp_path(task.path), records(), self.compression)
        return {"tmp": tmp, "first": task.first, "listed": task.count, "count": kept[0],
                "sha256": shards.file_sha256(tmp), "class_histogram": histogram.tolist(),
                "skipped": skipped}


def _fingerprint(entries: Sequence[VideoEntry], label_names: Sequence[str]) -> str:
    listing = [[e.video_id, e.label] for e in entries] + [list(label_names)]
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:16]


def convert_split(output_dir: str, split: str, entries: Sequence[VideoEntry],
                  label_names: Sequence[str], *, source: str = "frames",
                  num_shards: Optional[int] = None, workers: int = 1,
                  compression: str = "NONE", jpeg_quality: int = 90,
                  source_dir: Optional[str] = None, overwrite: bool = False,
                  verbose: bool = True) -> dict:
    """Writes (or finishes) one split's shards and manifest entry in ``output_dir``.

    Args:
      output_dir: directory for the shards and ``manifest.json`` (created if missing).
      split: shard name prefix, e.g. 'train', 'validation' or 'test'.
      entries: the listed videos, in order; shard i holds a contiguous run of them.
      label_names: class names, index = class id.
      source: 'frames' (entries are JPEG folders) or 'videos' (video files).
      num_shards: default ceil(len(entries) / 500).
      workers: processes writing shards in parallel.
      compression: 'NONE' (JPEGs do not compress), 'GZIP' or 'ZLIB'.
      jpeg_quality: JPEG quality of frames decoded from video files.
      source_dir: recorded in the manifest (where the videos were read).
      overwrite: replace a split made from another listing or settings instead of refusing.
      verbose: show a progress bar.

    Returns:
      The split's manifest entry: ``num_videos`` kept of ``num_listed``, ``skipped``
      (``video_id``, ``reason``) in listing order, ``class_histogram``, per-shard
      ``count`` / ``listed`` / ``sha256`` / ``skipped``.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}; got {source!r}.")
    entries = list(entries)
    num_shards = num_shards or max(1, math.ceil(len(entries) / DEFAULT_SHARD_SIZE))
    if not entries:
        raise ValueError(f"the {split} split lists no videos.")
    if num_shards > len(entries):
        raise ValueError(f"num_shards ({num_shards}) exceeds the {len(entries)} listed "
                         f"videos.")
    names = [shards.shard_name(split, i, num_shards, compression) for i in range(num_shards)]
    settings = {"dataset": DATASET, "record_format": RECORD_FORMAT, "source": source,
                "listing_sha256": _fingerprint(entries, label_names),
                "num_listed": len(entries), "num_shards": num_shards,
                "compression": compression,
                "jpeg_quality": jpeg_quality if source == "videos" else None}
    os.makedirs(output_dir, exist_ok=True)
    previous = (shards.read_manifest(output_dir).get("splits") or {}).get(split)
    if previous and previous.get("settings") != settings:
        differ = sorted(k for k in settings if previous["settings"].get(k) != settings[k])
        if not overwrite:
            raise ValueError(f"{output_dir} already holds a {split} split made with other "
                             f"settings ({', '.join(differ)} differ); use another output "
                             f"directory or --overwrite.")
        for path in glob.glob(os.path.join(output_dir, f"{split}-*-of-*.tfrecord*")):
            os.remove(path)
        previous = None
    shards.remove_stale_temps(output_dir, split)
    kept = shards.finished_shards(output_dir, previous)
    ranges = shards.shard_ranges(len(entries), num_shards)
    todo = [VideoShardTask(i, first, count, os.path.join(output_dir, names[i]),
                           tuple(entries[first:first + count]))
            for i, (first, count) in enumerate(ranges) if names[i] not in kept]

    def begin(_):
        return {"settings": settings, "labels": list(label_names),
                "num_classes": len(label_names), "complete": False, "shards": kept,
                "source_dir": source_dir and os.path.abspath(source_dir),
                "record_keys": {"context": [LABEL_KEY, LABEL_STRING_KEY, MEDIA_ID_KEY],
                                "feature_list": [IMAGE_KEY]}}

    shards.update_split(output_dir, split, begin)

    def add_shard(task: VideoShardTask, result: dict) -> None:
        tmp = result.pop("tmp")

        def add(entry):
            entry["shards"][os.path.basename(task.path)] = result
            return entry

        shards.update_split(output_dir, split, add)
        os.replace(tmp, task.path)

    start = time.time()
    done = sum(info["listed"] for info in kept.values())
    rate = shards.run_jobs(ShardJob(tuple(label_names), source, compression, jpeg_quality),
                           todo, add_shard, total=len(entries), done=done, workers=workers,
                           unit="video", verbose=verbose)
    run = dict(videos=sum(t.count for t in todo), workers=workers, videos_per_second=round(
        rate, 1), seconds=round(time.time() - start, 1))

    def finish(entry):
        infos = [entry["shards"][n] for n in names if n in entry["shards"]]
        entry["complete"] = len(infos) == num_shards
        entry["num_listed"] = sum(i["listed"] for i in infos)
        entry["num_videos"] = sum(i["count"] for i in infos)
        entry["skipped"] = [s for i in infos for s in i["skipped"]]
        entry["class_histogram"] = np.sum([i["class_histogram"] for i in infos],
                                          axis=0).astype(int).tolist()
        entry["unlabelled"] = entry["num_videos"] - sum(entry["class_histogram"])
        entry["last_run"] = run          # videos 0: nothing was left to convert
        return entry

    return shards.update_split(output_dir, split, finish)


def summary(split: str, entry: dict, output_dir: str, most: int = 10) -> str:
    """Lines for the converters to print: counts, the run's speed and skipped videos."""
    run = entry.get("last_run") or {}
    speed = ("; converted {videos} in {seconds} s ({videos_per_second} videos/s, {workers} "
             "workers)".format(**run) if run.get("videos") else "; nothing left to convert")
    lines = [f"{split}: {entry['num_videos']} of {entry['num_listed']} videos in "
             f"{entry['settings']['num_shards']} shards in {output_dir}{speed}"]
    skipped = entry["skipped"]
    if skipped:
        lines.append(f"skipped {len(skipped)} videos (listed in manifest.json):")
        lines += [f"  {s['video_id']}: {s['reason']}" for s in skipped[:most]]
        if len(skipped) > most:
            lines.append(f"  ... and {len(skipped) - most} more")
    return "\n".join(lines)
