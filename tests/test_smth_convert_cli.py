"""Video files to Something-Something records, and the convert_smth / convert_videos
programs (a spawned-worker run, and one ``error:`` line with exit 2 on user errors)."""

import json
import os

import cv2
import pytest
import tensorflow as tf

from rstg_tf.data import smth, video_clips
from tests import smth_fixtures as fx
from tests.helpers import run_python


def _write_video(path_stem, count):
    """A tiny video (mp4v .mp4, or MJPG .avi where that codec is missing); its path."""
    for suffix, fourcc in ((".mp4", "mp4v"), (".avi", "MJPG")):
        path = path_stem + suffix
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), 10.0,
                                 (fx.WIDTH, fx.HEIGHT))
        if writer.isOpened():
            for i in range(count):
                writer.write(fx.frame(3, i))
            writer.release()
            if cv2.VideoCapture(path).isOpened():
                return path
        writer.release()
    pytest.skip("OpenCV can write neither mp4v nor MJPG videos here")


def test_convert_video_files(tmp_path):
    videos = tmp_path / "videos"
    for label in fx.LABELS[:2]:
        (videos / label).mkdir(parents=True)
    first = _write_video(str(videos / fx.LABELS[0] / "a"), 7)
    _write_video(str(videos / fx.LABELS[1] / "b"), 4)
    (videos / fx.LABELS[1] / "broken.mp4").write_bytes(b"\x00not a video" * 10)
    entries = smth.video_file_entries(str(videos))
    assert [e.video_id for e in entries] == [f"{fx.LABELS[0]}/a", f"{fx.LABELS[1]}/b",
                                             f"{fx.LABELS[1]}/broken"]
    entry = smth.convert_split(str(tmp_path / "out"), "train", entries, fx.LABELS,
                               source="videos", num_shards=1, verbose=False)
    assert entry["num_videos"] == 2 and entry["class_histogram"] == [1, 1, 0, 0]
    assert entry["skipped"] == [{"video_id": f"{fx.LABELS[1]}/broken",
                                 "reason": "unreadable video"}]
    files, _, _ = video_clips.split_files(str(tmp_path / "out"), "train")
    records = [video_clips.parse_record(r) for r in tf.data.TFRecordDataset(files)]
    assert [int(r["num_frames"]) for r in records] == [7, 4]
    image = tf.io.decode_jpeg(records[0]["encoded"][2]).numpy()
    assert image.shape == (fx.HEIGHT, fx.WIDTH, 3)
    # the bar of frame 2 (columns 8..11) survives the codec and JPEG (RGB vs BGR aside)
    assert image[:, 8:12].mean() > image[:, 20:40].mean() + 40
    csv = tmp_path / "split.csv"
    csv.write_text(f"{os.path.relpath(first, videos)};{fx.LABELS[0]}\nmissing.mp4;"
                   f"{fx.LABELS[1]}\n")
    entry = smth.convert_split(str(tmp_path / "out2"), "validation",
                               smth.video_file_entries(str(videos), str(csv)), fx.LABELS,
                               source="videos", verbose=False)
    assert entry["num_videos"] == 1 and entry["skipped"][0]["reason"] == "missing video file"


def test_convert_smth_program_with_workers_and_holdout(tmp_path):
    layout = fx.make_layout(tmp_path / "smth")
    out = tmp_path / "out"
    args = ["-m", "train.convert_smth", f"--frames_dir={layout['frames_dir']}",
            f"--labels_csv={layout['labels_csv']}", f"--split_csv={layout['split_csv']}",
            f"--output_dir={out}", "--num_shards=2", "--workers=2", "--quiet",
            "--holdout_videos=3", "--holdout_seed=5"]
    done = run_python(args)
    assert done.returncode == 0, done.stderr
    splits = json.loads((out / "manifest.json").read_text())["splits"]
    train, holdout = splits["train"], splits["holdout"]
    assert train["complete"] and train["last_run"]["workers"] == 2
    assert train["num_listed"] == 7 and holdout["num_listed"] == 3
    assert train["num_videos"] + holdout["num_videos"] == 6
    assert len(train["skipped"]) + len(holdout["skipped"]) == 4
    assert f"train: {train['num_videos']} of 7 videos in 2 shards" in done.stdout
    assert f"holdout: {holdout['num_videos']} of 3 videos in 1 shards" in done.stdout
    assert "corrupt: corrupt JPEG 00003.jpg" in done.stdout
    # the same records as an in-process, single-worker conversion of the same draw
    rest, held = smth.hold_out(smth.frame_entries(layout["frames_dir"], layout["split_csv"]),
                               3, seed=5)
    assert {e.video_id for e in held} == {e.video_id for e in smth.hold_out(
        smth.frame_entries(layout["frames_dir"], layout["split_csv"]), 3, seed=5)[1]}
    entry = smth.convert_split(str(tmp_path / "serial"), "train", rest, fx.LABELS,
                               num_shards=2, verbose=False)
    assert {k: v["sha256"] for k, v in entry["shards"].items()} == \
        {k: v["sha256"] for k, v in train["shards"].items()}
    with pytest.raises(ValueError, match="between 1 and the 10 listed"):
        smth.hold_out(rest + held, 10)


@pytest.mark.parametrize("args, message", [
    (["train.convert_smth", "--labels_csv=x", "--split_csv=y", "--output_dir=z"],
     "frames_dir"),
    (["train.convert_smth", "--frames_dir=/nonexistent", "--labels_csv=x", "--split_csv=y",
      "--output_dir=z"], "--frames_dir=/nonexistent: directory /nonexistent does not exist"),
    (["train.convert_smth", "--frames_dir=.", "--labels_csv=x", "--split_csv=y",
      "--output_dir=z", "--split=val"], "split"),
    (["train.convert_smth", "--frames_dir=.", "--labels_csv=setup.py", "--split_csv=setup.py",
      "--output_dir=z", "--split=test", "--holdout_videos=3"], "out of the train split"),
    (["train.convert_videos", "--videos_dir=.", "--labels_csv=/nonexistent.csv",
      "--output_dir=z"], "--labels_csv=/nonexistent.csv: file /nonexistent.csv does not exist"),
])
def test_programs_refuse_bad_flags(args, message):
    done = run_python(["-m", *args], timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error:") and message in lines[0]
