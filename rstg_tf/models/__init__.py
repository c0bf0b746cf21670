"""Clip classifiers: RSTG and the paper's SyncMNIST baselines, through a registry."""

from rstg_tf.models.factory import MODELS, ModelConfig, build_backbone, build_model, register

__all__ = ["MODELS", "ModelConfig", "build_backbone", "build_model", "register"]
