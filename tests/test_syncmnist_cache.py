"""The on-disk video cache (``rstg_tf.data.syncmnist_cache``) and train.table's
``--data_cache`` / ``--data_only`` / ``--report_only``."""

import json
import os

import numpy as np
import pytest

from rstg_tf.data import syncmnist_cache
from rstg_tf.data.syncmnist import SyncMnistConfig
from rstg_tf.data.syncmnist_arrays import make_videos
from tests.helpers import run_python
from tests.syncmnist_fixtures import fake_mnist, write_fake_npz

CONFIG = SyncMnistConfig(num_digits=3, num_frames=4)


def _no_generation(*args, **kwargs):
    raise AssertionError("the cache should have been read, not the videos generated")


def test_cached_videos_are_make_videos_arrays_and_are_read_back_memory_mapped(
        tmp_path, monkeypatch):
    images, labels = fake_mnist(12)
    fresh = make_videos(images, labels, "val", 30, CONFIG, seed=3, with_digits=True)
    seen = []
    made = syncmnist_cache.cached_videos(str(tmp_path), images, labels, "val", 30, CONFIG,
                                         seed=3, progress=seen.append)
    assert sum(seen) == 30 and len(made) == 2          # clips and labels, as make_videos
    for a, b in zip(made, fresh):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setattr(syncmnist_cache, "make_videos", _no_generation)
    read = syncmnist_cache.cached_videos(str(tmp_path), images, labels, "val", 30, CONFIG,
                                         seed=3, with_digits=True)
    assert all(isinstance(a, np.memmap) for a in read)
    for a, b in zip(read, fresh):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):                     # read-only: nothing changes the cache
        read[0][0, 0, 0, 0, 0] = 1
    # another count, seed or digit set is other videos: a folder of their own
    with pytest.raises(AssertionError, match="should have been read"):
        syncmnist_cache.cached_videos(str(tmp_path), images, labels, "val", 31, CONFIG, seed=3)
    with pytest.raises(AssertionError, match="should have been read"):
        syncmnist_cache.cached_videos(str(tmp_path), images, labels, "val", 30, CONFIG, seed=4)
    with pytest.raises(AssertionError, match="should have been read"):
        syncmnist_cache.cached_videos(str(tmp_path), images[::-1], labels[::-1], "val", 30,
                                      CONFIG, seed=3)
    assert list(tmp_path.rglob(".tmp-*")) == []         # every file renamed into place
    folders = os.listdir(tmp_path)
    assert len(folders) == 1 and folders[0].startswith("val-30-")


def test_an_unfinished_cache_is_made_again_and_a_damaged_one_is_named(tmp_path):
    images, labels = fake_mnist(12)
    args = (str(tmp_path), images, labels, "test", 20, CONFIG)
    syncmnist_cache.cached_videos(*args)
    folder = os.path.join(tmp_path, os.listdir(tmp_path)[0])
    os.remove(os.path.join(folder, "videos.json"))      # killed before its last write
    again = syncmnist_cache.cached_videos(*args)
    assert len(again[0]) == 20 and os.path.exists(os.path.join(folder, "videos.json"))

    clips = os.path.join(folder, "clips.npy")
    with open(clips, "r+b") as f:                       # cut short on disk
        f.truncate(os.path.getsize(clips) // 2)
    with pytest.raises(ValueError, match=f"video cache {folder} is damaged.*clips.npy"):
        syncmnist_cache.cached_videos(*args)

    meta = os.path.join(folder, "videos.json")
    key = json.load(open(meta))
    json.dump({**key, "seed": 9}, open(meta, "w"))
    with pytest.raises(ValueError, match="holds other videos than its name says .different "
                                         "seed"):
        syncmnist_cache.cached_videos(*args)
    open(meta, "w").write('{"split": "te')                # cut short
    with pytest.raises(ValueError, match=f"video cache {folder} is damaged .videos.json"):
        syncmnist_cache.cached_videos(*args)


@pytest.mark.parametrize("flags_, message", [
    (["--data_cache=x"], "--data_cache and --data_only need --in_memory"),
    (["--in_memory", "--data_only"], "--data_only needs --data_cache"),
    (["--in_memory", "--data_cache=x", "--data_only", "--report_only"],
     "--data_only and --report_only do opposite things"),
])
def test_cache_flags_without_what_they_need_are_one_line_and_exit_2(tmp_path, flags_,
                                                                     message):
    result = run_python(["-m", "train.table", f"--work_dir={tmp_path}", *flags_])
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr and "Traceback" not in result.stderr


def test_data_only_then_a_row_from_the_cache_then_a_report_of_every_row(tmp_path):
    mnist = write_fake_npz(tmp_path / "mnist.npz")
    cache, work = tmp_path / "videos", tmp_path / "table"
    common = ["-m", "train.table", "--in_memory", "--budget=smoke", f"--mnist={mnist}",
              "--nomnist_check", f"--work_dir={work}", "--workers=1",
              f"--data_cache={cache}"]
    result = run_python([*common, "--data_only"], timeout=600, KERAS_BACKEND="jax")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert sorted(p.split("-")[0] for p in os.listdir(cache)) == ["test", "train", "val"]
    assert [p.name for p in work.iterdir()] == ["backbone8_256x1.weights.h5"]
    stamp = {p: os.path.getmtime(cache / p / "clips.npy") for p in os.listdir(cache)}

    result = run_python([*common, "--rows=mean_lstm"], timeout=600, KERAS_BACKEND="jax")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert {p: os.path.getmtime(cache / p / "clips.npy") for p in stamp} == stamp  # read only
    assert json.load(open(work / "mean_lstm" / "result.json"))["num_videos"] == 16

    result = run_python([*common, "--rows=mean_lstm,rstg_all_temp", "--report_only"],
                        timeout=600, KERAS_BACKEND="jax")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = (work / "table.md").read_text()
    assert "| rstg_all_temp |" in table and "not run" in table
    assert not (work / "rstg_all_temp").exists()        # nothing trained


def test_report_only_on_shards_makes_no_data_and_trains_nothing(tmp_path):
    work, data = tmp_path / "table", tmp_path / "shards"
    result = run_python(["-m", "train.table", "--budget=smoke", f"--work_dir={work}",
                         f"--data_dir={data}", "--rows=mean_lstm", "--report_only"])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "| mean_lstm |" in (work / "table.md").read_text()
    assert not data.exists() and not (work / "mean_lstm").exists()
    assert not list(work.glob("backbone*"))
