"""Every configs/smth_*.flags experiment parses into the VideoTrainConfig its name promises."""

import dataclasses
from pathlib import Path

import pytest
from absl import flags

from rstg_tf.data.video_clips import ClipConfig
from train import smth_flags

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = {
    "smth_c2d": dict(backbone="c2d", rstg_stages=(), rstg_final=False, non_local_stages=()),
    "smth_c2d_rstg_final": dict(backbone="c2d", rstg_stages=(), rstg_final=True),
    "smth_i3d": dict(backbone="i3d", rstg_stages=(), rstg_final=False, non_local_stages=()),
    "smth_i3d_rstg_final": dict(backbone="i3d", rstg_final=True),
    "smth_i3d_rstg_res3_res4": dict(backbone="i3d", rstg_stages=("res3", "res4")),
    "smth_nonlocal": dict(backbone="i3d", non_local_stages=("res3", "res4"), rstg_stages=()),
}


def parse(path, *extra):
    fv = flags.FlagValues()
    smth_flags.define_flags(fv)
    fv(["prog", f"--flagfile={path}", "--model_dir=/tmp/unused", *extra])
    return smth_flags.config_from_flags(fv)


def test_every_experiment_file_is_listed():
    names = {p.stem for p in (ROOT / "configs").glob("smth_*.flags")} - {"smth_reference"}
    assert names == set(EXPERIMENTS)


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_experiment_parses_to_the_reference_settings(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    config = parse(f"configs/{name}.flags")
    for field, value in EXPERIMENTS[name].items():
        assert getattr(config.model, field) == value, field
    r = config.model.rstg
    assert (r.gather, r.norm, r.scalewise_update, r.position_maps, r.input_batch_norm,
            r.layer_norm_scope) == ("dot", "layer", True, False, False, "graph")
    assert (r.node_dim, r.message_dim, r.num_iterations, r.num_scales) == (512, 512, 3, 3)
    assert config.model.frame_size == (224, 224) and config.model.num_frames == 32
    assert (config.model.dropout, config.model.num_classes, config.model.combination) == \
        (0.3, 174, "plus")
    assert (config.optimizer, config.learning_rate, config.momentum, config.batch_size) == \
        ("sgd", 1e-4, 0.9, 2)
    assert config.val_split == "holdout"
    assert (config.clip.short_side, config.clip.crop_size, config.clip.clips_per_video) == \
        (256, 224, 22)


def test_bad_values_are_refused(monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(ValueError, match="rstg_stages: unknown stages"):
        parse("configs/smth_i3d.flags", "--rstg_stages=res6")
    config = parse("configs/smth_i3d.flags")
    with pytest.raises(ValueError, match="must match the model"):
        dataclasses.replace(config, clip=ClipConfig(num_frames=16))
    with pytest.raises(ValueError, match="val_split must not be 'test'"):
        parse("configs/smth_i3d.flags", "--val_split=test")
