"""SyncMNIST data throughput: generation (videos/s) and tf.data reading + decoding.

  python -m benchmarks.syncmnist_data --num_videos=20000 --workers=2 --digits=3
  python -m benchmarks.syncmnist_data --data_dir=data/syncmnist3 --split=train --skip_generate

Issue #3's goals on the 2-core machine: generation >= 333 videos/s (600k train videos in
under 30 minutes); reading + decoding >= 5,000 videos/s. Results print and go to
``--output`` (JSON).
"""

import json
import os
import platform
import tempfile
import time

from absl import flags

from rstg_tf import cli

flags.DEFINE_string("data_dir", None, "Shard directory (default: a temporary one).")
flags.DEFINE_enum("split", "train", ["train", "val", "test"], "Split to make and read.")
flags.DEFINE_integer("digits", 3, "Digits per video.", lower_bound=2, upper_bound=10)
flags.DEFINE_integer("num_videos", 20000, "Videos to generate.", lower_bound=1)
flags.DEFINE_integer("workers", os.cpu_count() or 1, "Generation worker processes.",
                     lower_bound=1)
flags.DEFINE_boolean("skip_generate", False, "Only read an existing --data_dir.")
flags.DEFINE_integer("batch_size", 64, "Read batch size.", lower_bound=1)
flags.DEFINE_float("read_seconds", 20.0, "How long to time reading.", lower_bound=1.0)
flags.DEFINE_string("output", None, "Write the figures as JSON here.")


def _read_rate(data_dir, split, batch_size, seconds):
    from rstg_tf.data import syncmnist_records

    results = {}
    for mode, training in (("train (shuffled)", True), ("eval (deterministic)", False)):
        data = syncmnist_records.dataset(data_dir, split, batch_size, training=training,
                                         repeat=True)
        iterator = iter(data)
        for _ in range(5):                                   # warm up the pipeline
            next(iterator)
        videos, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            frames, _ = next(iterator)
            videos += int(frames.shape[0])
        results[mode] = round(videos / (time.perf_counter() - start), 1)
    return results


def main(argv):
    del argv
    f = flags.FLAGS
    from rstg_tf.data import syncmnist, syncmnist_records

    figures = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
               "digits": f.digits}
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = f.data_dir or scratch
        if not f.skip_generate:
            entry = syncmnist_records.make_split(
                data_dir, f.split, syncmnist.SyncMnistConfig(num_digits=f.digits),
                num_videos=f.num_videos, workers=f.workers, overwrite=True)
            run = entry["last_run"]
            size = sum(os.path.getsize(os.path.join(data_dir, n)) for n in entry["shards"])
            figures["generate"] = {"videos": run["videos"], "workers": run["workers"],
                                   "seconds": run["seconds"],
                                   "videos_per_second": run["videos_per_second"],
                                   "bytes_per_video": round(size / run["videos"])}
        figures["read_videos_per_second"] = _read_rate(data_dir, f.split, f.batch_size,
                                                       f.read_seconds)
    print(json.dumps(figures, indent=1))
    if f.output:
        from rstg_tf.data.atomic import atomic_write_text
        atomic_write_text(f.output, json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    cli.run(main)
