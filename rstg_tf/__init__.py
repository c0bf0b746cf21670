"""rstg-tf: Recurrent Space-time Graph neural networks (NeurIPS 2019) in TF2 / Keras 3."""

from rstg_tf.config import PRESETS, RSTGConfig, preset
from rstg_tf.graph import Graph, area_resize_matrix, build_graph
from rstg_tf.layers import RSTG, Gather, NodeLSTM, SpaceStage

__version__ = "0.1.0"
__all__ = ["PRESETS", "RSTGConfig", "preset", "Graph", "area_resize_matrix", "build_graph",
           "RSTG", "Gather", "NodeLSTM", "SpaceStage"]
