"""Keras layers of RSTG."""

from rstg_tf.layers.gather import Gather
from rstg_tf.layers.node_lstm import NodeLSTM
from rstg_tf.layers.rstg import RSTG
from rstg_tf.layers.space_stage import SpaceStage

__all__ = ["Gather", "NodeLSTM", "RSTG", "SpaceStage"]
