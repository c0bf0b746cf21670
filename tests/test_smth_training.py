"""Something-Something end to end at smoke size: convert a tiny SSv1 layout (with a holdout),
train a reduced I3D + RSTG res3-res4 one step, evaluate with centre and dense clips."""

import pytest
import json

from rstg_tf.training.video_trainer import evaluate_video, load_run
from tests.helpers import run_python
from tests.smth_fixtures import GOOD, make_layout

TINY = ["--backbone=i3d", "--width=4", "--num_classes=4", "--num_frames=4", "--crop_size=48",
        "--short_side=52", "--dense_crops=3",
        "--node_dim=8", "--message_dim=8", "--num_iterations=1", "--batch_size=2",
        "--epochs=1", "--steps_per_epoch=1", "--verbose=0"]


@pytest.mark.heavy
def test_convert_train_and_dense_evaluation(tmp_path):
    # one conversion process each (tests/test_smth_convert_cli.py runs the worker pool)
    layout = make_layout(tmp_path / "ssv1")
    data = tmp_path / "data"
    for split, extra in (("train", ["--holdout_videos=2"]), ("validation", [])):
        result = run_python(["-m", "train.convert_smth", f"--frames_dir={layout['frames_dir']}",
                             f"--labels_csv={layout['labels_csv']}",
                             f"--split_csv={layout['split_csv']}", f"--split={split}",
                             f"--output_dir={data}", "--num_shards=2", "--workers=1",
                             "--quiet", *extra])
        assert result.returncode == 0, result.stderr[-2000:]
    model_dir = tmp_path / "run"
    # The flagfile first: later flags override it.
    result = run_python(["-m", "train.smth", "--flagfile=configs/smth_i3d_rstg_res3_res4.flags",
                         f"--data_dir={data}", f"--model_dir={model_dir}", *TINY])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "done:" in result.stdout
    config = json.loads((model_dir / "config.json").read_text())
    assert config["val_split"] == "holdout"
    assert config["model"]["rstg_stages"] == ["res3", "res4"]
    assert (model_dir / "best.keras").exists() and (model_dir / "log.csv").exists()

    # dense evaluation through the program, centre clips through the library
    result = run_python(["-m", "train.evaluate_smth", f"--model_dir={model_dir}",
                         "--split=validation", "--batch_size=4", "--dense"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "validation (dense)" in result.stdout and "top-1" in result.stdout
    dense = json.loads((model_dir / "eval_validation_dense.json").read_text())
    config, model = load_run(str(model_dir))
    centre = evaluate_video(model, config, str(data), "validation", dense=False, batch_size=4)
    for scores, clips in ((centre, 1), (dense, 2 * 3)):
        assert scores["num_videos"] == len(GOOD)
        assert scores["num_clips"] == len(GOOD) * clips
        assert 0.0 <= scores["top1"] <= scores["top5"] <= 1.0


def test_train_refuses_data_without_its_holdout(tmp_path):
    layout = make_layout(tmp_path / "ssv1")
    data = tmp_path / "data"
    result = run_python(["-m", "train.convert_smth", f"--frames_dir={layout['frames_dir']}",
                         f"--labels_csv={layout['labels_csv']}",
                         f"--split_csv={layout['split_csv']}", f"--output_dir={data}",
                         "--workers=1", "--quiet"])
    assert result.returncode == 0, result.stderr[-2000:]
    result = run_python(["-m", "train.smth", f"--data_dir={data}",
                         f"--model_dir={tmp_path / 'run'}", *TINY])
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error:") and "--holdout_videos" in error
