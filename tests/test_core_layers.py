"""RSTG layers, backend-neutral (keras.ops + NumPy): also run under KERAS_BACKEND=jax."""

import numpy as np
import pytest
import keras

from rstg_tf import RSTG, Gather, RSTGConfig, SpaceStage, preset
from rstg_tf.config import RECURRENT_SCHEDULES, SCHEDULES
from tests.helpers import B, C, H, T, W, features, numpy, open_map_gate, tiny_config

ADJ4 = np.array([[0, 1, 1, 0], [1, 0, 1, 0], [1, 1, 0, 1], [0, 0, 1, 0]], "float32")


def _randomize(layer, seed):
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32")
                       for w in layer.get_weights()])


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _hand_coefficients(kind, mode, v, layer):
    a = ADJ4[None]
    if kind == "sum":
        return np.broadcast_to(a, (v.shape[0], 4, 4))
    (k1, b1), (k2, b2) = layer.att_src.get_weights(), layer.att_dst.get_weights()
    f_i, f_j = v @ k1 + b1, v @ k2 + b2
    if kind == "simple":
        logits = a * f_i + a * np.swapaxes(f_j, 1, 2)
        logits = np.where(logits > 0, logits, 0.2 * logits) + a
    else:
        logits = a * (f_i @ np.swapaxes(f_j, 1, 2))
    if mode == "strict":
        logits = np.where(a > 0, logits, -np.inf)
    return _softmax(logits)


@pytest.mark.parametrize("mode", ["soft", "strict"])
@pytest.mark.parametrize("kind", ["sum", "simple", "dot"])
def test_gather_coefficients_by_hand(kind, mode):
    rng = np.random.default_rng(1)
    v = rng.normal(size=(2, 4, 3)).astype("float32")
    m = rng.normal(size=(2, 4, 4, 5)).astype("float32")
    layer = Gather(kind, mode, attention_dim=7)
    layer(v, m, ADJ4)
    _randomize(layer, 2)
    coefs = _hand_coefficients(kind, mode, v, layer)
    np.testing.assert_allclose(numpy(layer.coefficients(v, ADJ4)), coefs, atol=1e-5)
    expected = np.maximum(np.einsum("mij,mijd->mid", coefs, m) + numpy(layer.bias), 0)
    np.testing.assert_allclose(numpy(layer(v, m, ADJ4)), expected, atol=1e-5)
    if mode == "soft" and kind != "sum":  # The reference's soft adjacency: all nodes weigh in.
        assert np.all(coefs > 0)
    if mode == "strict":
        assert np.all(coefs[:, ADJ4 == 0] == 0)


def test_factorised_send_equals_naive_pairs():
    cfg = tiny_config(position_maps=True, gather="dot", norm="layer")
    x = features(3, (5, 14, 8))
    fast, naive = SpaceStage(cfg), SpaceStage(cfg.replace(factorized_send=False))
    fast(x)
    naive(x)
    _randomize(fast, 4)
    naive.set_weights(fast.get_weights())
    np.testing.assert_allclose(numpy(fast.send(x)), numpy(naive.send(x)), atol=1e-5)
    np.testing.assert_allclose(numpy(fast(x)), numpy(naive(x)), atol=1e-5)
    # The pair tensor is [receiver i, sender j]: message (j -> i) = MLP([x_j | x_i]).
    xp = np.concatenate([x, np.broadcast_to(fast.graph.position_maps, (5, 14, 36))], -1)
    k, b = numpy(fast.send_kernel), numpy(fast.send_bias)
    first = np.maximum(np.concatenate([xp[:, 4], xp[:, 2]], -1) @ k + b, 0)
    w2, b2 = fast.send2.get_weights()
    np.testing.assert_allclose(numpy(fast.send(x))[:, 2, 4],
                               layer_norm(np.maximum(first @ w2 + b2, 0), fast), atol=1e-4)
    # One frame (the online step at batch 1) takes the two-halves path: same messages.
    one = numpy(fast.send(x[1:2]))
    np.testing.assert_allclose(one, numpy(naive.send(x[1:2])), atol=1e-5)
    np.testing.assert_allclose(one, numpy(fast.send(x))[1:2], atol=1e-5)
    np.testing.assert_allclose(numpy(fast(x[1:2])), numpy(naive(x[1:2])), atol=1e-5)


def layer_norm(x, stage):
    gamma, beta = stage.message_norm.get_weights()
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + stage.message_norm.epsilon) * gamma + beta


def _run_online(block, x):
    state = block.initial_state(x.shape[0])
    outs = []
    for t in range(x.shape[1]):
        out, state = block.step(x[:, t], state)
        outs.append(numpy(out))
    return outs


@pytest.mark.parametrize("readout", ["mean_time", "last_step", "map"])
@pytest.mark.parametrize("schedule", RECURRENT_SCHEDULES)
def test_online_steps_equal_clip(schedule, readout):
    cfg = tiny_config(schedule=schedule, readout=readout, position_maps=True,
                      gather="dot" if schedule == "one_temp" else "simple",
                      # (Layer norm over a handful of mostly-zero ReLU channels amplifies
                      # rounding ~100x; at real widths it does not. Batch norm here.)
                      norm="batch" if schedule == "homogeneous" else "none")
    x = features(5)
    block = RSTG(cfg)
    clip = numpy(block(x))
    open_map_gate(block)
    clip = numpy(block(x))
    outs = _run_online(block, x)
    if readout == "map":
        online = np.stack(outs, axis=1)
    else:
        online = outs[-1]
    assert np.abs(online - clip).max() <= 1e-5
    if readout == "mean_time":  # Before the last frame the running mean differs.
        assert np.abs(outs[-2] - clip).max() > 1e-4


@pytest.mark.parametrize("readout", ["mean_time", "map"])
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_layerwise_equals_framewise(schedule, readout):
    norm = "batch" if schedule == "homogeneous" else "layer"  # see test_online_steps_...
    cfg = tiny_config(schedule=schedule, readout=readout, scalewise_update=True, norm=norm)
    x = features(6)
    keras.utils.set_random_seed(0)  # reproducible weights
    layerwise = RSTG(cfg)
    layerwise(x)
    open_map_gate(layerwise)
    framewise = RSTG(cfg.replace(clip_mode="framewise"))
    framewise(x)
    framewise.set_weights(layerwise.get_weights())
    a, b = numpy(layerwise(x)), numpy(framewise(x))
    # Layer norm over 8 mostly-ReLU'd channels amplifies rounding. Over 25 random inits
    # of all_temp/map the two orders differ by <= 3.5e-6 under TF, but by up to 3.6e-5
    # under JAX (XLA:CPU; 2 of 25 inits above 1e-5).
    tolerance = 1e-5 if keras.backend.backend() == "tensorflow" else 5e-5
    assert np.abs(a - b).max() <= tolerance
    assert np.abs(a).max() > 1e-3


def test_space_only_ignores_frame_order_and_all_temp_does_not():
    x = features(7)
    perm = x[:, ::-1]
    for schedule, invariant in (("space_only", True), ("all_temp", False)):
        block = RSTG(tiny_config(schedule=schedule))
        diff = np.abs(numpy(block(x)) - numpy(block(perm))).max()
        assert (diff <= 1e-5) == invariant, (schedule, diff)


def test_time_only_keeps_nodes_independent():
    x = features(8)
    for schedule, independent in (("time_only", True), ("all_temp", False),
                                  ("homogeneous", False)):
        block = RSTG(tiny_config(schedule=schedule))
        block(x)
        nodes = numpy(block.encode(x))
        bumped = nodes.copy()
        bumped[:, :, 0] += 1.0  # change node 0's input only
        a = numpy(block._layerwise(keras.ops.convert_to_tensor(nodes), False))
        b = numpy(block._layerwise(keras.ops.convert_to_tensor(bumped), False))
        scale = np.abs(a).max()
        assert np.abs(a[:, :, 0] - b[:, :, 0]).max() > 1e-3 * scale
        others = np.abs(a[:, :, 1:] - b[:, :, 1:]).max()
        assert (others == 0) == independent, (schedule, others)
        assert independent or others > 1e-4 * scale


def test_schedules_own_the_right_weights():
    x = features(9)
    counts = {}
    for schedule in SCHEDULES:
        for k in (1, 3):
            block = RSTG(tiny_config(schedule=schedule, num_iterations=k))
            block(x)
            counts[schedule, k] = block.count_params()
        # Weights are shared across the K iterations: K does not change the count.
        assert counts[schedule, 1] == counts[schedule, 3], schedule
    ref = RSTG(tiny_config())
    ref(x)
    assert ref.time_intern is not None and ref.time_final is not None
    assert ref.time_intern is not ref.time_final            # separate final LSTM
    assert RSTG(tiny_config(schedule="one_temp")).time_intern is None
    assert RSTG(tiny_config(schedule="time_only")).space is None
    homog = RSTG(tiny_config(schedule="homogeneous"))
    assert homog.time_intern is None and homog.time_final is None
    assert len({counts[s, 1] for s in SCHEDULES}) == 4
    # Homogeneous: time messages reuse the space MLPs, so it owns exactly space_only's weights.
    assert counts["homogeneous", 1] == counts["space_only", 1]
    state = ref.initial_state(1)
    assert sorted(state) == sorted(["t0_h", "t0_c", "t1_h", "t1_c", "final_h", "final_c",
                                    "readout_sum", "num_frames"])


def test_keras_file_round_trip(tmp_path):
    cfg = tiny_config(position_maps=True, gather="dot", norm="batch", scalewise_update=True)
    inputs = keras.Input((T, H, W, C))
    model = keras.Model(inputs, keras.layers.Dense(5)(RSTG(cfg, name="rstg")(inputs)))
    x = features(10)
    before = numpy(model(x))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_layer("rstg").config == cfg
    np.testing.assert_array_equal(numpy(loaded(x)), before)
    clone = RSTG.from_config(model.get_layer("rstg").get_config())
    assert clone.config == cfg


def test_bfloat16_block_builds_and_follows_float32():
    """A whole-bfloat16 block (weights stored in bf16, e.g. for serving) builds (the
    orthogonal LSTM init is drawn in float32) and tracks the float32 block it copies."""
    x = features(11)
    block32 = RSTG(tiny_config(), name="rstg32")
    ref = numpy(block32(x))
    keras.config.set_dtype_policy("bfloat16")
    try:
        block16 = RSTG(tiny_config(), name="rstg16")
        block16.build(x.shape)
    finally:
        keras.config.set_dtype_policy("float32")
    assert {v.dtype for v in block16.weights} == {"bfloat16"}
    block16.set_weights(block32.get_weights())
    out = numpy(keras.ops.cast(block16(keras.ops.cast(x, "bfloat16")), "float32"))
    assert np.abs(out - ref).max() <= 0.02 * np.abs(ref).max() + 1e-3
    assert np.abs(out - ref).max() > 0  # it did run in bfloat16


def test_map_readout_starts_as_identity_and_projects():
    x = features(11)
    block = RSTG(tiny_config(readout="map", node_dim=12))   # 8 channels -> 12 -> 8
    out = numpy(block(x))
    assert out.shape == x.shape
    np.testing.assert_allclose(out, x, atol=1e-6)
    assert block.project_in is not None and block.project_out is not None


def test_presets_are_the_reference_configs():
    ref = RSTGConfig()
    assert (ref.gather, ref.adjacency, ref.norm, ref.num_iterations, ref.num_scales,
            ref.node_dim, ref.message_dim, ref.schedule, ref.position_maps) == (
        "simple", "soft", "none", 3, 3, 512, 512, "all_temp", False)
    assert preset("syncmnist_positional").position_maps
    ss = preset("ssv1")
    assert (ss.gather, ss.norm, ss.scalewise_update, ss.frame_size) == (
        "dot", "layer", True, (224, 224))
    assert RSTGConfig.from_dict(ss.to_dict()) == ss


@pytest.mark.parametrize("field,value", [
    ("gather", "mean"), ("adjacency", "hard"), ("norm", "group"), ("schedule", "x"),
    ("readout", "max"), ("clip_mode", "fast"), ("num_iterations", 0), ("node_dim", -3)])
def test_unknown_option_values_are_named(field, value):
    with pytest.raises(ValueError, match=field):
        RSTGConfig(**{field: value})


def test_bad_inputs_fail_at_build_with_clear_errors():
    with pytest.raises(ValueError, match="rank 5"):
        RSTG(tiny_config())(features(0, (B, H, W, C)))
    with pytest.raises(ValueError, match="at least 3x3"):
        RSTG(tiny_config())(features(0, (B, T, 2, 2, C)))
    block = RSTG(tiny_config())
    block(features(0))
    with pytest.raises(ValueError, match="axis 4"):
        block(features(0, (B, T, H, W, C + 1)))
    with pytest.raises(ValueError, match="frame"):
        block.step(features(0, (B, H + 1, W, C)), block.initial_state(B))
    with pytest.raises(ValueError, match="no online mode"):
        RSTG(tiny_config(schedule="space_only")).step(features(0, (B, H, W, C)), {})
    with pytest.raises(ValueError, match="project_out"):
        RSTG(tiny_config(readout="map", node_dim=12, project_out=False))(features(0))
    with pytest.raises(ValueError, match="unknown RSTGConfig fields"):
        RSTGConfig.from_dict({"gathr": "dot"})


def test_node_lstm_initialisations_keras_and_cudnn():
    """keras: forget-gate bias 1, orthogonal recurrent kernel; cudnn (the reference's TF1
    CudnnLSTM): zero biases, each gate's block Glorot-uniform on its own fan-in/out."""
    import keras

    from rstg_tf.layers import NodeLSTM

    d_in, units = 24, 16
    keras.utils.set_random_seed(0)
    default = NodeLSTM(units)
    default.build((None, d_in))
    bias = numpy(default.bias)
    assert (bias[units:2 * units] == 1).all() and not np.delete(bias, np.s_[units:2 * units]).any()
    recurrent = numpy(default.recurrent_kernel)              # [U, 4U], orthogonal rows
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(units), atol=1e-5)
    cudnn = NodeLSTM(units, init="cudnn")
    cudnn.build((None, d_in))
    assert not numpy(cudnn.bias).any()
    for weights, rows in ((numpy(cudnn.kernel), d_in), (numpy(cudnn.recurrent_kernel), units)):
        limit = np.sqrt(6.0 / (rows + units))                 # a gate block's Glorot bound
        assert np.abs(weights).max() <= limit
        assert np.abs(weights).max() > 0.9 * limit            # not the [rows, 4U] bound
    assert NodeLSTM.from_config(cudnn.get_config()).init == "cudnn"
    with pytest.raises(ValueError, match="init must be one of"):
        NodeLSTM(units, init="he")


def test_rstg_with_cudnn_lstm_init_round_trips_through_a_keras_file(tmp_path):
    import keras

    from rstg_tf import RSTG

    config = tiny_config(lstm_init="cudnn")
    inputs = keras.Input((T, H, W, C))
    model = keras.Model(inputs, RSTG(config)(inputs))
    x = features()
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.layers[1].config.lstm_init == "cudnn"
    np.testing.assert_allclose(numpy(loaded(x)), numpy(model(x)), rtol=1e-5, atol=1e-6)


def test_graph_layer_norm_is_the_reference_layer_norm():
    """tf.contrib.layers.layer_norm's defaults: every non-batch axis, per-channel params."""
    from rstg_tf.layers.norm import GraphLayerNorm

    x = np.random.default_rng(0).normal(2.0, 3.0, size=(2, 5, 4, 6)).astype("float32")
    norm = GraphLayerNorm(axes=(-3, -2, -1))
    norm.build(x.shape)
    gamma = np.linspace(0.5, 1.5, 6).astype("float32")
    beta = np.linspace(-1, 1, 6).astype("float32")
    norm.set_weights([gamma, beta])
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    var = x.var(axis=(1, 2, 3), keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-12) * gamma + beta
    np.testing.assert_allclose(numpy(norm(x)), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="must be distinct and include the channels"):
        GraphLayerNorm(axes=(-2,))(x)


def test_graph_scope_norms_span_the_graph_and_have_no_online_mode(tmp_path):
    from rstg_tf.layers.norm import GraphLayerNorm

    config = tiny_config(norm="layer", layer_norm_scope="graph", readout="map",
                         project_out=True)
    block = RSTG(config)
    x = features()
    y = block(x)
    assert tuple(y.shape) == x.shape
    assert block.input_norm.axes == (-4, -2, -1)                 # [T, B, N, D]: the clip
    assert block.space.message_norm.axes == (-3, -2, -1)         # a frame's N x N messages
    assert block.space.update_norm.axes == (-2, -1)              # a frame's N nodes
    assert block.map_norm.axes == (-4, -3, -2, -1)               # the clip's map
    assert isinstance(block.space.update_norm, GraphLayerNorm)
    # The clip-wide input norm: a frame's nodes depend on the other frames.
    changed = x.copy()
    changed[:, -1] += 5.0
    assert not np.allclose(numpy(block.encode(x))[0], numpy(block.encode(changed))[0])
    with pytest.raises(ValueError, match="no online mode"):
        block.step(x[:, 0], block.initial_state(B))
    path = tmp_path / "graph_norm.keras"
    model = keras.Sequential([keras.Input(x.shape[1:]), block])
    model.save(path)
    np.testing.assert_allclose(numpy(keras.saving.load_model(path)(x)), numpy(model(x)),
                               rtol=1e-5, atol=1e-5)
