"""Convert Something-Something-v1 frames to TFRecord shards: ``python -m train.convert_smth``.

  python -m train.convert_smth --frames_dir=smth/20bn-something-something-v1 \\
      --labels_csv=smth/something-something-v1-labels.csv \\
      --split_csv=smth/something-something-v1-train.csv --split=train --output_dir=data/smth
  (then --split=validation with ...-validation.csv, --split=test with ...-test.csv)

Records keep the source JPEG bytes. A video that cannot be read (missing folder, unknown
label, no frames, corrupt JPEG) is skipped and listed with its reason in manifest.json.
Re-running the same command finishes an interrupted split (finished shards are kept).
See docs/data_smth.md.
"""

import os

from absl import flags

from rstg_tf import cli


def define_common_flags() -> None:
    """The flags both converters have (``train.convert_videos`` too)."""
    flags.DEFINE_string("labels_csv", None, "Class names, one a line (index = line order).")
    flags.DEFINE_string("output_dir", None, "Directory for the shards and manifest.json.")
    flags.DEFINE_enum("split", "train", ["train", "validation", "test"], "Split name (shard "
                      "prefix); test videos may be unlabelled.")
    flags.DEFINE_integer("num_shards", None, "Shards (default: one per 500 videos).",
                         lower_bound=1)
    flags.DEFINE_integer("workers", min(os.cpu_count() or 1, 8), "Worker processes.",
                         lower_bound=1)
    flags.DEFINE_enum("compression", "NONE", ["NONE", "GZIP", "ZLIB"], "TFRecord "
                      "compression (JPEG bytes barely compress).")
    flags.DEFINE_integer("holdout_videos", 0, "With --split=train: hold this many videos "
                         "(drawn at random) out of the train split, as a 'holdout' split "
                         "for choosing checkpoints.", lower_bound=0)
    flags.DEFINE_integer("holdout_seed", 0, "Seed of the holdout draw.")
    flags.DEFINE_boolean("overwrite", False, "Replace a split made from another listing.")
    flags.DEFINE_boolean("quiet", False, "No progress bar.")
    flags.mark_flags_as_required(["labels_csv", "output_dir"])


def convert(list_entries, source: str, source_dir: str, **options) -> None:
    """Converts the videos ``list_entries(smth, labelled)`` lists; prints the summary."""
    f = flags.FLAGS
    if f.holdout_videos and f.split != "train":
        raise ValueError(f"--holdout_videos holds videos out of the train split; got "
                         f"--split={f.split}.")
    from rstg_tf.data import smth  # TensorFlow loads only once the flags are good

    labels = smth.read_labels(f.labels_csv)
    splits = {f.split: list_entries(smth, f.split != "test")}
    if f.holdout_videos:
        splits["train"], splits["holdout"] = smth.hold_out(splits["train"], f.holdout_videos,
                                                           f.holdout_seed)
    for split, entries in splits.items():
        shards = f.num_shards if split == f.split else None
        entry = smth.convert_split(f.output_dir, split, entries, labels, source=source,
                                   num_shards=shards, workers=f.workers,
                                   compression=f.compression, source_dir=source_dir,
                                   overwrite=f.overwrite, verbose=not f.quiet, **options)
        print(smth.summary(split, entry, f.output_dir))


def define_flags() -> None:
    flags.DEFINE_string("frames_dir", None, "Folder with one sub-folder of numbered JPEGs "
                        "(00001.jpg, ...) per video id.")
    flags.DEFINE_string("split_csv", None, "The split's videos: 'id;label name' lines (the "
                        "test split: 'id' lines).")
    define_common_flags()
    flags.mark_flags_as_required(["frames_dir", "split_csv"])
    cli.require_paths(directories=["frames_dir"], files=["labels_csv", "split_csv"])


def main(argv):
    del argv
    f = flags.FLAGS
    convert(lambda smth, labelled: smth.frame_entries(f.frames_dir, f.split_csv, labelled),
            "frames", f.frames_dir)


if __name__ == "__main__":
    define_flags()
    cli.run(main)
