"""Clip classifiers built from a ``ModelConfig`` through a registry (TF Model Garden style).

Every model: uint8 clip [B, T, H, W, C] -> ``backbone`` (SimpleC2D) -> head -> dropout ->
``classifier`` (dense) -> logits [B, num_classes] (float32, also under mixed precision).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Dict, Iterator

import keras

from rstg_tf.backbones.simple_c2d import SimpleC2D
from rstg_tf.config import MODEL_NAMES, WEIGHT_DTYPES, ModelConfig
from rstg_tf.layers.rstg import RSTG
from rstg_tf.models.heads import ConvLSTM, MeanLSTM, SmallI3D


MODELS: Dict[str, Callable[[ModelConfig], keras.layers.Layer]] = {}


def register(name: str, normalises_features: bool = False):
    """Registers ``fn(config) -> head layer`` (features [B,T,H,W,C] -> [B, D]).

    ``normalises_features``: the head batch-normalises its own input, so ``build_model``
    adds no ``feature_bn`` in front of it.
    """

    def wrap(fn):
        fn.normalises_features = normalises_features
        MODELS[name] = fn
        if name not in MODEL_NAMES:                 # ModelConfig(name=name) now passes
            MODEL_NAMES.append(name)
        return fn

    return wrap


@register("rstg", normalises_features=True)      # RSTGConfig.input_batch_norm
def _rstg(config: ModelConfig):
    return RSTG(config.rstg, name="rstg")


@register("mean_lstm")
def _mean_lstm(config: ModelConfig):
    return MeanLSTM(config.hidden, name="mean_lstm")


@register("conv_lstm")
def _conv_lstm(config: ModelConfig):
    return ConvLSTM(config.hidden, conv_filters=max(config.hidden // 4, 8), name="conv_lstm")


@register("i3d")
def _i3d(config: ModelConfig):
    return SmallI3D(config.hidden // 2, name="i3d")


@register("non_local")
def _non_local(config: ModelConfig):
    return SmallI3D(config.hidden // 2, non_local=True, name="i3d_non_local")


def build_backbone(config: ModelConfig) -> SimpleC2D:
    return SimpleC2D(config.num_filters, name="backbone")


def build_model(config: ModelConfig) -> keras.Model:
    """The clip classifier of ``config``: uint8 clips -> logits."""
    clips = keras.Input((config.num_frames, *config.frame_size, config.channels),
                        dtype="uint8", name="frames")
    features = build_backbone(config)(clips)
    head = MODELS[config.name]
    if config.feature_batch_norm and not head.normalises_features:
        features = keras.layers.BatchNormalization(name="feature_bn")(features)
    pooled = head(config)(features)
    pooled = keras.layers.Dropout(config.dropout, name="dropout")(pooled)
    logits = keras.layers.Dense(config.num_classes, dtype="float32", name="classifier")(pooled)
    return keras.Model(clips, logits, name=config.name)


@contextlib.contextmanager
def dtype_policy(dtype: str) -> Iterator[None]:
    """Layers built inside the ``with`` store and compute in ``dtype`` (Keras' global
    dtype policy, restored on exit)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def with_weights_dtype(model: keras.Model, config: ModelConfig, dtype: str) -> keras.Model:
    """``model`` rebuilt with every weight stored, and computed, in ``dtype`` (the
    classifier stays float32, as are its logits): a copy for inference and serving.

    bfloat16 halves the weights and, on CPUs with AVX512_BF16, runs the matmuls natively
    (on a 2-core Zen 4 VM the RSTG block's batch-1 online step p50 ~5 ms vs ~7.3 in
    float32; an exported SyncMNIST model's stream_step ~19-20 vs ~31 ms); float16 is
    the GPU choice. Outputs follow the float32 model's to ~1 % of their scale.
    """
    if dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weights dtype must be one of {list(WEIGHT_DTYPES)}; got {dtype!r}.")
    if dtype == "float32" and all(w.dtype == "float32" for w in model.weights):
        return model
    with dtype_policy(dtype):
        copy = build_model(config)
    copy.set_weights(model.get_weights())        # each cast to its variable's dtype
    return copy
