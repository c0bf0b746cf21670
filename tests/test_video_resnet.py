"""ResNet-50 C2D / I3D backbones and the Something-Something models built on them."""

import numpy as np
import pytest
import keras
import tensorflow as tf

from rstg_tf.backbones.resnet3d import (Bottleneck3D, ResNetStem, feature_size, stage_blocks,
                                        stage_sizes)
from rstg_tf.config import PRESETS
from rstg_tf.layers.non_local import NonLocalBlock
from rstg_tf.models.video_resnet import (VideoModelConfig, build_video_model, count_params,
                                         rebuild_for_input)

TINY_RSTG = PRESETS["ssv1"].replace(node_dim=8, message_dim=8)


def tiny(**changes):
    values = dict(backbone="i3d", num_classes=5, num_frames=4, frame_size=(64, 64), width=4,
                  rstg=TINY_RSTG)
    values.update(changes)
    return VideoModelConfig(**values)


def test_stage_plan_is_resnet50_with_the_i3d_inflation_pattern():
    i3d, c2d = stage_blocks("i3d"), stage_blocks("c2d")
    assert [len(i3d[s]) for s in ("res2", "res3", "res4", "res5")] == [3, 4, 6, 3]
    assert [b.temporal_kernel for b in i3d["res3"]] == [3, 1, 3, 1]
    assert [b.temporal_kernel for b in i3d["res4"]] == [3, 1, 3, 1, 3, 1]
    assert [b.temporal_kernel for b in i3d["res5"]] == [1, 3, 1]
    assert all(b.temporal_kernel == 1 for s in c2d.values() for b in s)
    assert [(b.out_channels, b.inner_channels, b.stride) for b in i3d["res4"][:2]] == \
        [(1024, 256, 2), (1024, 256, 1)]
    with pytest.raises(ValueError, match="backbone must be one of"):
        stage_blocks("r3d")


def test_stage_sizes_at_224_and_256():
    assert stage_sizes((224, 224)) == {"stem": (55, 55), "res2": (55, 55), "res3": (28, 28),
                                       "res4": (14, 14), "res5": (14, 14)}
    assert feature_size(256, "res5") == 16


@pytest.mark.parametrize("backbone", ["c2d", "i3d"])
def test_full_size_shapes_and_parameter_counts(backbone):
    """Shape inference only (no step): the feature map of every stage at 32 x 224 x 224."""
    model = build_video_model(VideoModelConfig(backbone=backbone, rstg_stages=("res3", "res4")))
    assert model.output_shape == (None, 174)
    shapes = {name: model.get_layer(name).output.shape
              for name in ("stem", "res2_2", "pool2", "res3_3", "rstg_res3", "res4_5",
                           "rstg_res4", "res5_2")}
    assert shapes["stem"] == (None, 32, 55, 55, 64)
    assert shapes["res2_2"] == (None, 32, 55, 55, 256)
    assert shapes["pool2"] == (None, 16, 55, 55, 256)
    assert shapes["rstg_res3"] == shapes["res3_3"] == (None, 16, 28, 28, 512)
    assert shapes["rstg_res4"] == shapes["res4_5"] == (None, 16, 14, 14, 1024)
    assert shapes["res5_2"] == (None, 16, 14, 14, 2048)
    counts = count_params(model)
    # ResNet-50 C2D has 23.5M parameters without the classifier, I3D 27.2M (Non-local
    # paper: 24.3M and 28.0M with Kinetics' 400 classes); each RSTG-to-map 8.4M.
    backbone_only = counts["total"] - counts["graph"] - (2048 + 1) * 174
    assert backbone_only == {"c2d": 23_561_152, "i3d": 27_276_992}[backbone]
    assert counts["graph"] == 16_807_424


def test_c2d_is_resnet50():
    """With 1000 classes C2D has the 2-D ResNet-50's 25,557,032 trainable parameters."""
    counts = count_params(build_video_model(VideoModelConfig(backbone="c2d",
                                                             num_classes=1000)))
    assert counts["trainable"] == 25_557_032
    assert counts["total"] - counts["trainable"] == 53_120      # BN moving statistics


def _conv3d(x, kernel, stride, pad_t, pad_s):
    x = tf.pad(x, [[0, 0], [pad_t, pad_t], [pad_s, pad_s], [pad_s, pad_s], [0, 0]])
    return tf.nn.conv3d(x, kernel, strides=[1, *stride, 1], padding="VALID")


def _bn(layer, x):
    gamma, beta, mean, var = (w.numpy() for w in layer.weights)
    return (x - mean) / np.sqrt(var + 1e-5) * gamma + beta


def test_bottleneck_equals_the_reference_computation():
    """Explicit padding then 'valid' convs (the reference's), on an odd and an even map."""
    rng = np.random.default_rng(0)
    for size in (9, 10):
        block = Bottleneck3D(16, 4, stride=2, temporal_kernel=3)
        x = rng.normal(size=(2, 3, size, size, 8)).astype("float32")
        block.build(x.shape)
        for bn in block.bns + [block.branch1_bn]:     # non-trivial moving statistics
            bn.set_weights([rng.uniform(0.5, 2, bn.weights[i].shape).astype("float32")
                            if i in (0, 3) else rng.normal(size=bn.weights[i].shape)
                            .astype("float32") for i in range(4)])
        y = block(x, training=True).numpy()          # frozen: training uses moving stats
        a = tf.nn.relu(_bn(block.bns[0], _conv3d(x, block.branch2a.kernel, (1, 1, 1), 1, 0)))
        b = tf.nn.relu(_bn(block.bns[1], _conv3d(a, block.branch2b.kernel, (1, 2, 2), 0, 1)))
        c = _bn(block.bns[2], _conv3d(b, block.branch2c.kernel, (1, 1, 1), 0, 0))
        s = _bn(block.branch1_bn, _conv3d(x, block.branch1.kernel, (1, 2, 2), 0, 0))
        np.testing.assert_allclose(y, tf.nn.relu(c + s).numpy(), rtol=1e-4, atol=1e-4)
        assert y.shape == (2, 3, (size + 1) // 2, (size + 1) // 2, 16)


def test_stem_and_frozen_batch_norm():
    stem = ResNetStem(8, temporal_kernel=5)
    x = np.random.default_rng(1).normal(size=(1, 6, 32, 32, 3)).astype("float32")
    y = stem(x, training=True)
    assert tuple(y.shape) == (1, 6, 7, 7, 8) == stem.compute_output_shape(x.shape)
    assert np.allclose(stem.bn.moving_mean.numpy(), 0)     # statistics not updated
    unfrozen = ResNetStem(8, temporal_kernel=5, frozen_bn=False)
    unfrozen(x, training=True)
    assert not np.allclose(unfrozen.bn.moving_mean.numpy(), 0)


def test_non_local_video_form_subsamples_and_scales():
    block = NonLocalBlock(4, subsample=True, scaled=True, frozen_bn=True)
    x = np.random.default_rng(2).normal(size=(2, 2, 4, 4, 8)).astype("float32")
    assert np.allclose(block(x, training=True), x)           # zero-initialised scale
    block.norm.gamma.assign(np.ones(8, "float32"))
    flat = x.reshape(2, -1, 8)
    keys = x.reshape(2, 2, 2, 2, 2, 2, 8).max(axis=(3, 5)).reshape(2, -1, 8)
    theta, phi, g = (layer(v).numpy() for layer, v in ((block.theta, flat), (block.phi, keys),
                                                       (block.g, keys)))
    logits = theta @ phi.transpose(0, 2, 1) / 2.0
    attention = np.exp(logits - logits.max(-1, keepdims=True))
    attention /= attention.sum(-1, keepdims=True)
    expected = x + _bn(block.norm, block.out(attention @ g).numpy().reshape(x.shape))
    np.testing.assert_allclose(block(x, training=True), expected, rtol=1e-4, atol=1e-5)


def test_non_local_model_has_five_blocks():
    model = build_video_model(tiny(non_local_stages=("res3", "res4")))
    names = [layer.name for layer in model.layers if isinstance(layer, NonLocalBlock)]
    assert names == ["nonlocal_res3_1", "nonlocal_res3_3", "nonlocal_res4_1",
                     "nonlocal_res4_3", "nonlocal_res4_5"]


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="rstg_stages: unknown stages \\['res5'\\]"):
        tiny(rstg_stages=("res5",))
    with pytest.raises(ValueError, match="both an RSTG and Non-local"):
        tiny(rstg_stages=("res3",), non_local_stages=("res3",))
    with pytest.raises(ValueError, match="combination must be one of"):
        tiny(combination="concat")
    with pytest.raises(ValueError, match="num_frames must be even"):
        tiny(num_frames=5)
    assert VideoModelConfig.from_dict(tiny(rstg_stages=("res3",)).to_dict()) == \
        tiny(rstg_stages=("res3",))


def test_tiny_model_trains_and_round_trips(tmp_path):
    config = tiny(rstg_stages=("res3", "res4"), rstg_final=True)
    model = build_video_model(config)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 4, 64, 64, 3)).astype("float32")
    y = np.array([1, 3])
    before = model(x).numpy()
    # Eager steps: tracing this graph's gradient costs ~40 s on 2 cores, a step ~2 s.
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  run_eagerly=True)
    model.fit(x, y, epochs=1, verbose=0)
    after = model(x).numpy()
    assert not np.allclose(before, after)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded(x), after, rtol=1e-5, atol=1e-5)
    # Dense-crop model: the same weights on 72 x 72 clips (2 x 2 pool5 windows).
    dense = rebuild_for_input(model, config, (72, 72))
    assert dense.get_layer("pool5").output.shape[1:4] == (1, 2, 2)
    z = rng.normal(size=(1, 4, 72, 72, 3)).astype("float32")
    assert np.isfinite(dense(z)).all()


def test_serial_combination_uses_only_the_graph_vector():
    model = build_video_model(tiny(rstg_final=True, combination="serial"))
    assert model.get_layer("dropout").input.shape == (None, 1, 1, 1, 128)
    names = [layer.name for layer in model.layers]
    assert "rstg_final_plus" not in names and "pool5" not in names


def test_graph_starts_as_identity():
    """With the zero-initialised output norms, RSTG-to-map and -to-vec change nothing."""
    plain = build_video_model(tiny())
    graph = build_video_model(tiny(rstg_stages=("res3",), rstg_final=True))
    weights = {w.path: w for w in graph.weights}
    for w in plain.weights:
        weights[w.path].assign(w.numpy())
    x = np.random.default_rng(4).normal(size=(1, 4, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(graph(x), plain(x), rtol=1e-5, atol=1e-6)


@pytest.mark.heavy
def test_speed_benchmark_runs_under_jax_without_tensorflow(tmp_path):
    """The device command's benchmark (the GPU machine has JAX and no TensorFlow)."""
    import json

    from tests.helpers import run_python, without_tensorflow
    result = run_python([*without_tensorflow("benchmarks.smth_speed"), "--smoke",
                         f"--output_dir={tmp_path}", "--batch_sizes=2", "--steps=1",
                         "--warmup=1"], KERAS_BACKEND="jax")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "smth_speed.json").read_text())
    assert report["backend"] == "jax" and report["measured"]["batch"] == 2
    assert report["measured"]["clips_per_s"] > 0
    assert report["measured"]["params"]["graph"] > 0
    assert "clips/s" in (tmp_path / "smth_speed.md").read_text()
