"""Convert video files to Something-Something-style shards: ``python -m train.convert_videos``.

  python -m train.convert_videos --videos_dir=clips --labels_csv=labels.csv \\
      --output_dir=data/clips                       # clips/<label name>/<video>.mp4
  python -m train.convert_videos --videos_dir=clips --labels_csv=labels.csv \\
      --split_csv=val.csv --split=validation --output_dir=data/clips   # 'file;label' lines

Frames are decoded with OpenCV (mp4, avi, webm, ...) and stored as JPEGs (--jpeg_quality),
in the records ``python -m train.convert_smth`` writes; media id: the file's path under
--videos_dir without its extension. Unreadable videos are skipped and listed with their
reason in manifest.json. Re-running finishes an interrupted split. See docs/data_smth.md.
"""

from absl import flags

from rstg_tf import cli
from train.convert_smth import convert, define_common_flags

flags.DEFINE_string("videos_dir", None, "Folder of videos: <label name>/<video> files, or "
                    "the files --split_csv names.")
flags.DEFINE_string("split_csv", None, "Optional 'file;label name' lines (file relative to "
                    "--videos_dir; 'file' alone for unlabelled test videos).")
flags.DEFINE_integer("jpeg_quality", 90, "JPEG quality of the stored frames.",
                     lower_bound=1, upper_bound=100)
define_common_flags()
flags.mark_flag_as_required("videos_dir")
cli.require_paths(directories=["videos_dir"], files=["labels_csv", "split_csv"])


def main(argv):
    del argv
    f = flags.FLAGS
    convert(lambda smth, labelled: smth.video_file_entries(f.videos_dir, f.split_csv,
                                                           labelled),
            "videos", f.videos_dir, jpeg_quality=f.jpeg_quality)


if __name__ == "__main__":
    cli.run(main)
