"""Importing the authors' TF1 checkpoints (rstg_tf.training.reference_ckpt) and the
train.import_reference_ckpt program, on reduced models and checkpoints written here under
the reference's names (IuliaDuta/RSTG), built from its naming rules, not from the table."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from rstg_tf.config import PRESETS
from rstg_tf.models.video_resnet import VideoModelConfig, build_video_model
from rstg_tf.training import reference_ckpt, reference_names
from tests.helpers import run_python

D = 8                                   # node and message width of the reduced graphs
CELL = "rnn/multi_rnn_cell/cell_0/cudnn_compatible_lstm_cell"
GRAPH = PRESETS["ssv1"].replace(node_dim=D, message_dim=D)
SMALL = dict(num_classes=5, num_frames=4, frame_size=(64, 64), width=4, rstg_final=True,
             rstg=GRAPH)
I3D = VideoModelConfig(backbone="i3d", rstg_stages=("res3",), **SMALL)
C2D_NL = VideoModelConfig(backbone="c2d", non_local_stages=("res3",), **SMALL)
# width 4: (blocks, output channels) per stage; I3D's temporal convs (use_temp_convs_*).
STAGES = {"res2": (3, 16), "res3": (4, 32), "res4": (6, 64), "res5": (3, 128)}
I3D_TEMPORAL = {"res2": (1, 1, 1), "res3": (1, 0, 1, 0), "res4": (1, 0, 1, 0, 1, 0),
                "res5": (0, 1, 0)}
# Extern LSTMs at the saver's names; inner ones as the test chooses (aliases).
EXPECTED_LSTMS = {"res3": "backbone/whole_graph_model_res3/cudnn_lstm",
                  "final": "whole_graph_model_final/cudnn_lstm"}
ALIASED_LSTMS = {"res3": "backbone/time_update_intern/cudnn_lstm",
                 "final": "whole_graph_model_final/cudnn_lstm_1"}


def _norm(ref, ours, size, kind="bn"):
    names = ("gamma", "beta", "moving_mean", "moving_variance") if kind == "bn" else (
        "gamma", "beta")
    return [(f"{ref}/{v}", (size,), f"{ours}/{v}", "same") for v in names]


def _conv(ref, ours, shape, how="reshape"):
    return [(f"{ref}/kernel", shape, f"{ours}/kernel", how),
            (f"{ref}/bias", shape[-1:], f"{ours}/bias", "same")]


def _backbone(i3d, non_local=()):
    rows = [("backbone/conv1/kernel", (5 if i3d else 1, 7, 7, 3, 4), "stem/conv1/kernel",
             "same")] + _norm("backbone/res_conv1_bn", "stem/res_conv1_bn", 4)
    cin = 4
    for stage, (blocks, out) in STAGES.items():
        for i in range(blocks):
            kt = 1 + 2 * I3D_TEMPORAL[stage][i] if i3d else 1
            convs = [("branch2a", (kt, 1, 1, cin, out // 4)),
                     ("branch2b", (1, 3, 3, out // 4, out // 4)),
                     ("branch2c", (1, 1, 1, out // 4, out))]
            convs += [("branch1", (1, 1, 1, cin, out))] if i == 0 else []
            for branch, shape in convs:
                ref, ours = f"backbone/{stage}_{i}_{branch}", f"{stage}_{i}/{branch}"
                rows += [(f"{ref}/kernel", shape, f"{ours}/kernel", "same")]
                rows += _norm(f"{ref}_bn", f"{ours}_bn", shape[-1])
            cin = out
            if stage in non_local and i % 2 == 1:
                ref, ours = f"backbone/nonlocal_conv{stage[-1]}_{i}", f"nonlocal_{stage}_{i}"
                for part in ("theta", "phi", "g", "out"):
                    shape = (1, 1, 1) + ((out // 2, out) if part == "out" else (out, out // 2))
                    rows += _conv(f"{ref}_{part}", f"{ours}/{part}", shape)
                rows += _norm(f"{ref}_bn", f"{ours}/norm", out)
    return rows


def _graph(place, channels, lstm, residual):
    g = f"backbone/whole_graph_model_{place}" if place != "final" else "whole_graph_model_final"
    ours = f"rstg_{place}"
    s, send, upd = f"{ours}/space", f"{g}/send_messages_mlp", f"{g}/update_node_mlp_"
    rows = _conv(f"{g}/project_i3d", f"{ours}/project_in", (channels, D), "same")
    rows += _norm(f"{g}/before_graf_ln", f"{ours}/input_norm", D, "ln")
    rows += [(f"{send}/send_conv1/kernel", (1, 1, 2 * D, D), f"{s}/send1_kernel", "reshape"),
             (f"{send}/send_conv1/bias", (D,), f"{s}/send1_bias", "same")]
    rows += _conv(f"{send}/send_conv2", f"{s}/send2", (1, 1, D, D))
    rows += _norm(f"{send}/message_ln", f"{s}/message_norm", D, "ln")
    for conv, name in (("att_conv1", "att_receiver"), ("att_conv2", "att_sender")):
        rows += _conv(f"{g}/dot_product_attn/{conv}", f"{s}/gather/{name}", (1, D, D))
    rows += [(f"{g}/dot_product_attn/att_bias/biases", (D,), f"{s}/gather/bias", "same")]
    for scale in range(3):
        for i in range(2):
            rows += _conv(f"{upd}/update_conv{i + 1}_type{scale + 1}", f"{s}/update{scale}_{i}",
                          (1, (2 if i == 0 else 1) * D, D))
    rows += _norm(f"{upd}/update_ln", f"{s}/update_norm", D, "ln")
    for scope, name in ((lstm, "time_intern"), (f"{g}/time_update_extern/cudnn_lstm",
                                                "time_final")):
        rows += [(f"{scope}/{CELL}/kernel", (2 * D, 4 * D), f"{ours}/{name}", "lstm"),
                 (f"{scope}/{CELL}/bias", (4 * D,), f"{ours}/{name}/bias", "lstm_bias")]
    rows += _conv(f"{g}/project_back_to_i3d", f"{ours}/project_out", (D, channels), "same")
    norm = f"{ours}/map_norm" if place != "final" else "rstg_final_norm"
    return rows + [(f"{residual}_ln_scale", (channels,), f"{norm}/gamma", "same"),
                   (f"{residual}_ln/beta", (channels,), f"{norm}/beta", "scaled_beta")]


def _spec(config, lstms=EXPECTED_LSTMS, classes=5):
    """(reference name, shape, our weight, how it converts) for a model of ``config``."""
    i3d = config.backbone == "i3d"
    rows = _backbone(i3d, config.non_local_stages)
    if "res3" in config.rstg_stages:
        rows += _graph("res3", 32, lstms["res3"], "backbone/res3_after_graph")
    rows += _graph("final", 128, lstms["final"],
                   "final_after_graph" if i3d else "after_graph")
    return rows + _conv("pred", "pred", (1, 1, 1, 128, classes))


def _values(spec, seed=0):
    rng = np.random.default_rng(seed)
    values = {}
    for name, shape, _, _ in spec:
        if name.endswith(("gamma", "moving_variance", "_scale")):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0.0, 1.0 / np.sqrt(np.prod(shape[:-1]) or 1), shape)
        values[name] = value.astype("float32")
    return values


def _gates(value):
    """TF's (i, j, f, o) gate blocks -> Keras' (i, f, j, o), by index."""
    order = np.r_[0:D, 2 * D:3 * D, D:2 * D, 3 * D:4 * D]
    return value[..., order]


def _expected(spec, values, root):
    """{our weight: the value the import must give it} (for the names in ``values``)."""
    out = {}
    for name, _, ours, how in spec:
        if f"{root}/{name}" not in values:
            continue
        v = values[f"{root}/{name}"]
        if how == "lstm":
            out[f"{ours}/kernel"], out[f"{ours}/recurrent_kernel"] = _gates(v[:D]), _gates(v[D:])
        elif how == "lstm_bias":
            out[ours] = _gates(v)
        elif how == "scaled_beta":
            out[ours] = v * values[f"{root}/{name.replace('_ln/beta', '_ln_scale')}"]
        else:
            out[ours] = v.reshape(-1, v.shape[-1]) if how == "reshape" else v
    return out


def _write(prefix, values):
    names = sorted(values)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(values[n]) for n in names])
    return prefix


def _clip():
    return np.random.default_rng(1).normal(size=(1, 4, 64, 64, 3)).astype("float32")


@pytest.fixture(scope="module")
def i3d_checkpoint(tmp_path_factory):
    """An I3D + RSTG res3 + final checkpoint with aliased inner LSTMs, one variable missing,
    a 7-class classifier, optimizer slots and other non-weights, and one unknown variable."""
    root = "tower/resnet_i3d"
    spec = _spec(I3D, ALIASED_LSTMS, classes=7)
    values = {f"{root}/{k}": v for k, v in _values(spec).items()}
    del values[f"{root}/backbone/res4_2_branch2b_bn/moving_mean"]
    extras = {"global_step": np.array(5000, "int64"),
              f"{root}/backbone/conv1/kernel/Momentum": values[f"{root}/backbone/conv1/kernel"],
              f"{root}/backbone/whole_graph_model_res3/graph_input/resize/"
              "resize_filters__8_8_3x3": np.zeros((3, 3, 8, 8), "float32"),
              f"{root}/backbone/time_update_intern/cudnn_lstm/opaque_kernel":
                  np.zeros((100,), "float32"),
              f"{root}/extra/unknown": np.ones((3,), "float32")}
    prefix = _write(str(tmp_path_factory.mktemp("ckpt") / "model_5000.ckpt"),
                    {**values, **extras})
    return prefix, spec, values


def test_table_names_every_weight_by_the_reference_rules():
    for config in (I3D, C2D_NL):
        model = build_video_model(config)
        table = reference_names.reference_table(model)
        assert sorted(e.weight for e in table) == sorted(w.path for w in model.weights)
        spec_names = {name for name, *_ in _spec(config)}
        assert {s for e in table for s in e.sources} == spec_names
    text = reference_names.format_table(table)
    assert "rstg_final_norm/beta" in text and "gates (i, j, f, o) -> (i, f, j, o)" in text


def test_import_i3d_rstg(i3d_checkpoint):
    prefix, spec, values = i3d_checkpoint
    model = build_video_model(I3D)
    before = {w.path: w.numpy().copy() for w in model.weights}
    out_before = keras.ops.convert_to_numpy(model(_clip(), training=False))
    report = reference_ckpt.import_reference(model, prefix + ".index")
    assert report.checkpoint == prefix and report.root == "tower/resnet_i3d"
    missing = "res4_2/branch2b_bn/moving_mean"
    assert report.missing == [{"weight": missing, "checkpoint": [
        "tower/resnet_i3d/backbone/res4_2_branch2b_bn/moving_mean"]}]
    assert {m["weight"] for m in report.mis_shaped} == {"pred/kernel", "pred/bias"}
    assert report.unused == ["tower/resnet_i3d/extra/unknown"] and report.unmapped == []
    assert report.aliases == {f"tower/resnet_i3d/{EXPECTED_LSTMS[p]}":
                              f"tower/resnet_i3d/{ALIASED_LSTMS[p]}" for p in ("res3", "final")}
    kept = {missing, "pred/kernel", "pred/bias"}
    expected = _expected(spec, values, "tower/resnet_i3d")
    assert set(expected) == {w.path for w in model.weights} - {missing}
    for w in model.weights:
        want = before[w.path] if w.path in kept else expected[w.path]
        np.testing.assert_array_equal(w.numpy(), want, err_msg=w.path)
    # One gate explicitly: Keras' forget gate (block 1) is TF's block 2, input rows first.
    lstm = model.get_layer("rstg_res3").time_intern
    tf_kernel = values[f"tower/resnet_i3d/{ALIASED_LSTMS['res3']}/{CELL}/kernel"]
    np.testing.assert_array_equal(lstm.kernel.numpy()[:, D:2 * D], tf_kernel[:D, 2 * D:3 * D])
    np.testing.assert_array_equal(lstm.recurrent_kernel.numpy()[:, 2 * D:3 * D],
                                  tf_kernel[D:, D:2 * D])
    out = keras.ops.convert_to_numpy(model(_clip(), training=False))
    assert np.all(np.isfinite(out)) and not np.allclose(out, out_before)
    again = build_video_model(I3D)
    reference_ckpt.import_reference(again, prefix)
    again.get_layer("pred").set_weights(model.get_layer("pred").get_weights())  # kept: random
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(again(_clip(), training=False)),
                                  out)
    assert "kept pred/kernel (128, 5)" in report.summary()


def test_import_c2d_non_local_from_another_root(tmp_path):
    spec = _spec(C2D_NL)
    values = {f"kinetics/resnet_c2d/{k}": v for k, v in _values(spec, seed=2).items()}
    prefix = _write(str(tmp_path / "c2d.ckpt"), values)
    model = build_video_model(C2D_NL)
    report = reference_ckpt.import_reference(model, str(tmp_path))   # the directory
    assert report.root == "kinetics/resnet_c2d" and len(report.assigned) == len(model.weights)
    assert not (report.missing or report.mis_shaped or report.unmapped or report.unused
                or report.aliases)
    expected = _expected(spec, values, "kinetics/resnet_c2d")
    for w in model.weights:
        np.testing.assert_array_equal(w.numpy(), expected[w.path], err_msg=w.path)
    theta = values[f"{report.root}/backbone/nonlocal_conv3_1_theta/kernel"]
    np.testing.assert_array_equal(model.get_layer("nonlocal_res3_1").theta.kernel.numpy(),
                                  theta[0, 0, 0])
    assert report.checkpoint == prefix


def test_errors_and_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.ckpt"):
        reference_ckpt.resolve_checkpoint(str(tmp_path / "nowhere.ckpt"))
    model = build_video_model(C2D_NL)
    bare = _write(str(tmp_path / "bare"), {"foo/bar": np.ones(2, "float32")})
    with pytest.raises(ValueError, match="backbone/conv1/kernel"):
        reference_ckpt.import_reference(model, bare)
    wrong = _write(str(tmp_path / "wrong"), {
        "tower/resnet_c2d/backbone/conv1/kernel": np.ones((1, 7, 7, 3, 5), "float32")})
    with pytest.raises(ValueError, match="no weight"):
        reference_ckpt.import_reference(model, wrong)
    names = ["tower/resnet_i3d/" + reference_ckpt.ANCHOR, "a/" + reference_ckpt.ANCHOR]
    assert reference_ckpt.find_root(names, "i3d") == "tower/resnet_i3d"
    assert reference_ckpt.find_root(names, "c2d", scope_root="/a/") == "a"
    with pytest.raises(ValueError, match="several models"):
        reference_ckpt.find_root(names, "c2d")


def _flagfile(tmp_path):
    path = tmp_path / "small.flags"
    path.write_text("--flagfile=configs/smth_reference.flags\n--backbone=i3d\n--num_classes=5\n"
                    "--num_frames=4\n--crop_size=64\n--width=4\n--rstg_stages=res3\n"
                    f"--rstg_final\n--node_dim={D}\n--message_dim={D}\n")
    return str(path)


def test_cli_writes_a_loadable_model(i3d_checkpoint, tmp_path):
    prefix, spec, values = i3d_checkpoint
    output, report = tmp_path / "out" / "model.keras", tmp_path / "report.json"
    result = run_python(["-m", "train.import_reference_ckpt", f"--flagfile={_flagfile(tmp_path)}",
                         f"--checkpoint={prefix}", f"--output={output}", f"--report={report}"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "kept pred/kernel" in result.stdout and f"wrote {output}" in result.stdout
    assert json.loads(report.read_text())["unused"] == ["tower/resnet_i3d/extra/unknown"]
    loaded = keras.saving.load_model(str(output), compile=False)
    expected = _expected(spec, values, "tower/resnet_i3d")
    for w in loaded.weights:
        if w.path in ("stem/conv1/kernel", "rstg_res3/time_intern/kernel",
                      "rstg_final_norm/beta"):
            np.testing.assert_array_equal(w.numpy(), expected[w.path], err_msg=w.path)
    assert [p.name for p in output.parent.iterdir()] == ["model.keras"]   # no temp left


def test_cli_missing_checkpoint_is_one_error_line(tmp_path):
    result = run_python(["-m", "train.import_reference_ckpt",
                         f"--flagfile={_flagfile(tmp_path)}",
                         f"--checkpoint={tmp_path}/none.ckpt", f"--output={tmp_path}/m.keras"])
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1 and "none.ckpt" in errors[0]
    assert not (tmp_path / "m.keras").exists()
