"""Clip classifiers: RSTG and the paper's SyncMNIST baselines, through a registry."""

from rstg_tf.models.factory import (MODELS, WEIGHT_DTYPES, ModelConfig, build_backbone,
                                    build_model, dtype_policy, register, with_weights_dtype)

__all__ = ["MODELS", "WEIGHT_DTYPES", "ModelConfig", "build_backbone", "build_model",
           "dtype_policy", "register", "with_weights_dtype"]
