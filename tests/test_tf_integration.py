"""RSTG under TensorFlow: gradients, model.fit on tf.data, MirroredStrategy, mixed
precision, oneDNN kernels; the core tests under JAX; the README demo."""

import importlib.util
import json
import os
import textwrap

import numpy as np
import pytest
import keras
import tensorflow as tf

from rstg_tf import RSTG
from tests.helpers import C, H, T, W, features, open_map_gate, run_python, tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, timeout=300, **env):
    """Runs ``python ARGS`` from the repo root in a fresh process; returns its stdout."""
    proc = run_python(args, timeout=timeout, **env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    return proc.stdout


def _run_python(code, **env):
    return _run(["-c", textwrap.dedent(code)], **env)


@pytest.mark.parametrize("changes", [
    dict(position_maps=True, norm="batch"),
    dict(gather="dot", norm="layer", scalewise_update=True, readout="map", node_dim=12),
    dict(schedule="homogeneous", gather="sum", readout="last_step"),
    dict(schedule="time_only"),
], ids=["all_temp_positional", "dot_map_scalewise", "homogeneous_sum", "time_only"])
def test_gradients_reach_every_trainable_weight(changes):
    block = RSTG(tiny_config(**changes))
    x = tf.constant(features(1))
    block(x)
    open_map_gate(block)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(block(x, training=True)))
    grads = tape.gradient(loss, block.trainable_variables)
    assert block.trainable_variables
    for var, grad in zip(block.trainable_variables, grads):
        assert grad is not None, var.path
        assert float(tf.reduce_max(tf.abs(grad))) > 0, var.path


def _tiny_classifier(cfg, classes=3):
    inputs = keras.Input((T, H, W, C))
    logits = keras.layers.Dense(classes)(RSTG(cfg)(inputs))
    model = keras.Model(inputs, logits)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def test_fit_on_tf_data_lowers_the_loss():
    keras.utils.set_random_seed(0)
    y = np.arange(16) % 3
    x = features(2, (16, T, H, W, C))
    x[np.arange(16), ..., y] += 1.5  # class k lights channel k: learnable, not memorised
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(16, seed=0).batch(4).prefetch(2)
    model = _tiny_classifier(tiny_config(position_maps=True))
    history = model.fit(ds, epochs=8, verbose=0, shuffle=False)  # ds shuffles itself
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.8 * losses[0], losses


def test_mirrored_strategy_on_two_devices():
    out = _run_python("""
        import json, numpy as np, tensorflow as tf, keras
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from rstg_tf import RSTG
        from tests.helpers import tiny_config, features, T, H, W, C
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            inputs = keras.Input((T, H, W, C))
            model = keras.Model(inputs, keras.layers.Dense(3)(RSTG(tiny_config())(inputs)))
            model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(
                from_logits=True))
        x = features(3, (8, T, H, W, C)); y = np.arange(8) % 3
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
        h = model.fit(ds, epochs=2, verbose=0)
        print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                          "loss": h.history["loss"]}))
    """)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert all(np.isfinite(result["loss"]))


@pytest.mark.parametrize("readout", ["mean_time", "map"])
def test_mixed_float16_trains(readout):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        inputs = keras.Input((T, H, W, C))
        block = RSTG(tiny_config(readout=readout, gather="dot", norm="layer"))
        out = block(inputs)
        if readout == "map":
            out = keras.layers.GlobalAveragePooling3D()(out)
        logits = keras.layers.Dense(3, dtype="float32")(out)
        model = keras.Model(inputs, logits)
        model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True))
        x = features(4, (8, T, H, W, C))
        history = model.fit(x, np.arange(8) % 3, batch_size=4, epochs=1, verbose=0)
        step_out, _ = block.step(x[:2, 0], block.initial_state(2))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert block.compute_dtype == "float16" and "float16" in str(step_out.dtype)
    assert np.isfinite(history.history["loss"][0])
    assert np.all(np.isfinite(np.asarray(step_out, "float32")))


def test_online_equals_clip_with_onednn_kernels():
    out = _run_python("""
        import numpy as np
        from rstg_tf import RSTG
        from tests.helpers import tiny_config, features, numpy
        block = RSTG(tiny_config(position_maps=True))
        x = features(12)
        clip = numpy(block(x))
        state = block.initial_state(x.shape[0])
        for t in range(x.shape[1]):
            out, state = block.step(x[:, t], state)
        print(float(np.abs(numpy(out) - clip).max()))
    """, TF_ENABLE_ONEDNN_OPTS="1")
    assert float(out.strip().splitlines()[-1]) <= 1e-5


# Two halves of tests/test_core_layers.py, so that pytest-xdist runs them side by side.
# Under JAX (every eager op compiled on first use: ~6x TF's time) the clip-vs-step
# equivalences run for the two schedule families, per-stage weights (all_temp) and shared
# ones (homogeneous), with every read-out; the other schedules run subsets of these
# stages, and all of them are checked under TF.
_EQUIVALENCE = "layerwise_equals_framewise or online_steps_equal_clip"


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
@pytest.mark.parametrize("select", [f"({_EQUIVALENCE}) and (all_temp or homogeneous)",
                                    f"not ({_EQUIVALENCE})"], ids=["equivalence", "rest"])
@pytest.mark.heavy
def test_core_layer_tests_pass_under_jax(select):
    out = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-k", select,
                "tests/test_core_layers.py"], timeout=600, KERAS_BACKEND="jax")
    assert " passed" in out and "skipped" not in out and " deselected" in out


def test_readme_demo_runs():
    out = _run(["-m", "train.demo", "--steps=2", "--batch_size=1", "--frames=3"])
    assert "14 nodes, 45 edges" in out
    assert "loss:" in out


def test_programs_turn_on_onednn_cpu_kernels_unless_told_not_to():
    # TF enables oneDNN by itself only on AVX-512/AMX CPUs; our programs ask for it
    # everywhere (it must be set before TensorFlow loads), and leave a user's choice alone.
    # Each package sets it on import (rstg_tf.cli.program_environment) without loading
    # TensorFlow ...
    for package in ("train", "export", "benchmarks"):
        code = (f"import sys, os, {package}; "
                "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], 'tensorflow' in sys.modules)")
        out = run_python(["-c", code], timeout=120, TF_ENABLE_ONEDNN_OPTS=None)
        assert out.stdout.split()[-2:] == ["1", "False"], (package, out.stderr[-2000:])
    # ... and TensorFlow, loaded after it, runs oneDNN's kernels, or not when told not to
    code = ("import export, os; from tensorflow.python.util import _pywrap_util_port as p; "
            "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], p.IsMklEnabled())")
    default = run_python(["-c", code], timeout=120, TF_ENABLE_ONEDNN_OPTS=None)
    assert default.stdout.split()[-2:] == ["1", "True"], default.stderr[-2000:]
    off = run_python(["-c", code], timeout=120, TF_ENABLE_ONEDNN_OPTS="0")
    assert off.stdout.split()[-2:] == ["0", "False"], off.stderr[-2000:]
