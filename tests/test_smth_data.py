"""Something-Something-v1 conversion: layout readers, records, manifest with skipped videos,
resume (a re-run is a no-op) and the unlabelled test split."""

import json
import os

import cv2
import pytest
import tensorflow as tf

from rstg_tf.data import shards, smth, video_clips
from tests import smth_fixtures as fx


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    return fx.make_layout(tmp_path_factory.mktemp("smth"))


def _records(output_dir, split="train"):
    files, _, _ = video_clips.split_files(str(output_dir), split)
    return [video_clips.parse_record(r) for r in tf.data.TFRecordDataset(files)]


def test_layout_readers(layout, tmp_path):
    assert smth.read_labels(layout["labels_csv"]) == fx.LABELS
    rows = smth.read_split(layout["split_csv"])
    assert [r[0] for r in rows] == fx.ORDER and rows[0] == ("v1", fx.LABELS[0])
    assert smth.read_split(layout["test_csv"], labelled=False) == [("v2", None), ("v3", None)]
    with pytest.raises(ValueError, match="test.csv:1: no label"):
        smth.read_split(layout["test_csv"])
    twice = tmp_path / "twice.csv"
    twice.write_text("a;x\nb;y\na;x\n")
    with pytest.raises(ValueError, match="twice.csv:3: video 'a' is listed twice"):
        smth.read_split(str(twice))
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        smth.read_labels(str(tmp_path / "nope.csv"))
    for name in ("10.jpg", "2.jpg", "1.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [os.path.basename(p) for p in smth.frame_files(str(tmp_path))] == \
        ["1.jpg", "2.jpg", "10.jpg"]


def test_jpeg_checks(tmp_path):
    ok, buffer = cv2.imencode(".jpg", fx.frame(1, 2))
    data = buffer.tobytes()
    assert smth.check_jpeg(data) == (None, (fx.HEIGHT, fx.WIDTH, 3))
    assert smth.check_jpeg(data[:-2])[0] in ("corrupt", "truncated")   # no end marker
    assert smth.check_jpeg(b"GIF89a...")[0] == "corrupt"
    (tmp_path / "00001.jpg").write_bytes(data)
    cv2.imwrite(str(tmp_path / "00002.jpg"), fx.frame(1, 3)[:, :50])
    with pytest.raises(smth.SkipVideo, match="frame sizes differ .00002.jpg is 50x40"):
        smth.read_frame_folder(str(tmp_path))


def test_encode_is_deterministic_and_round_trips():
    jpegs = [b"\xff\xd8one\xff\xd9", b"\xff\xd8two\xff\xd9", b"\xff\xd8three\xff\xd9"]
    record = smth.encode_smth_video(jpegs, 7, "Tearing something", "12345")
    assert record == smth.encode_smth_video(jpegs, 7, "Tearing something", "12345")
    parsed = video_clips.parse_record(tf.constant(record))
    assert parsed["encoded"].numpy().tolist() == jpegs and parsed["num_frames"] == 3
    assert parsed["label"] == 7 and parsed["media_id"] == b"12345"
    example = tf.train.SequenceExample.FromString(record)
    assert example.context.feature[smth.LABEL_STRING_KEY].bytes_list.value == \
        [b"Tearing something"]
    with pytest.raises(ValueError, match="no frames"):
        smth.encode_smth_video([], 0, "x", "y")


def test_convert_reports_broken_videos_and_keeps_jpeg_bytes(layout, tmp_path):
    entry = fx.convert(layout, tmp_path)
    assert entry["complete"] and entry["num_listed"] == 10 and entry["num_videos"] == 6
    assert {s["video_id"]: s["reason"] for s in entry["skipped"]} == fx.BROKEN
    assert [s["video_id"] for s in entry["skipped"]] == [v for v in fx.ORDER
                                                         if v in fx.BROKEN]
    assert entry["class_histogram"] == [2, 2, 1, 1] and entry["unlabelled"] == 0
    assert entry["labels"] == fx.LABELS and entry["settings"]["dataset"] == smth.DATASET
    manifest = json.loads((tmp_path / shards.MANIFEST).read_text())["splits"]["train"]
    assert sum(s["count"] for s in manifest["shards"].values()) == 6
    for name, info in manifest["shards"].items():
        assert shards.file_sha256(str(tmp_path / name)) == info["sha256"]
    records = _records(tmp_path)
    assert [r["media_id"].numpy().decode() for r in records] == \
        [v for v in fx.ORDER if v in fx.GOOD]
    for record in records:
        video_id = record["media_id"].numpy().decode()
        count, label = fx.GOOD[video_id]
        assert record["label"] == label and record["num_frames"] == count
        folder = os.path.join(layout["frames_dir"], video_id)
        source = [open(os.path.join(folder, f"{i + 1:05d}.jpg"), "rb").read()
                  for i in range(count)]
        assert record["encoded"].numpy().tolist() == source     # the original bytes


def test_rerun_is_a_noop_and_finishes_a_lost_shard(layout, tmp_path):
    fx.convert(layout, tmp_path)
    paths = sorted(p for p in tmp_path.iterdir() if ".tfrecord" in p.name)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths}
    entry = fx.convert(layout, tmp_path)
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths} == before
    assert len(entry["skipped"]) == 4
    paths[1].unlink()
    paths[2].write_bytes(b"damaged")
    entry = fx.convert(layout, tmp_path)
    assert entry["complete"] and entry["last_run"]["videos"] == 6     # shards 1 and 2
    assert {p.name: p.read_bytes() for p in paths} == {k: v[0] for k, v in before.items()}
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    with pytest.raises(ValueError, match="other settings .*num_shards"):
        fx.convert(layout, tmp_path, num_shards=2)
    entry = fx.convert(layout, tmp_path, num_shards=2, overwrite=True)
    assert len(entry["shards"]) == 2 and len(list(tmp_path.glob("train-*"))) == 2


def test_unlabelled_test_split(layout, tmp_path):
    entry = fx.convert(layout, tmp_path, split="test", num_shards=1)
    assert entry["num_videos"] == 2 and entry["unlabelled"] == 2 and not entry["skipped"]
    assert [int(r["label"]) for r in _records(tmp_path, "test")] == [-1, -1]
