"""The examples in the layers' docstrings run and print what they say."""

import doctest

import keras
import numpy as np
import pytest

from rstg_tf.backbones.resnet3d import Bottleneck3D, ResNetStem
from rstg_tf.config import RSTGConfig
from rstg_tf.layers import RSTG, Gather, NodeLSTM, SpaceStage
from rstg_tf.layers.non_local import NonLocalBlock
from rstg_tf.layers.norm import GraphLayerNorm
from rstg_tf.models.heads import ConvLSTM, MeanLSTM, ResidualBlock3D, SmallI3D

LAYERS = [RSTG, SpaceStage, Gather, NodeLSTM, GraphLayerNorm, NonLocalBlock, MeanLSTM,
          ConvLSTM, ResidualBlock3D, SmallI3D, ResNetStem, Bottleneck3D]


@pytest.mark.parametrize("layer", LAYERS, ids=lambda c: c.__name__)
def test_docstring_has_keras_sections_and_its_example_runs(layer):
    doc = layer.__doc__
    for section in ("Call arguments:", "Example:"):
        assert section in doc, f"{layer.__name__}: no '{section}' section"
    assert "Args:" in doc or layer is ResidualBlock3D
    globs = {"np": np, "keras": keras, "RSTGConfig": RSTGConfig, layer.__name__: layer}
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    test = parser.get_doctest(doc, globs, layer.__name__, None, 0)
    assert test.examples, f"{layer.__name__}: the example has no >>> lines"
    result = runner.run(test, out=lambda s: pytest.fail(s))
    assert result.failed == 0
