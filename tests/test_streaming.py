"""The model's online mode (rstg_tf.models.streaming): its own layers, frame by frame."""

import numpy as np
import pytest

from rstg_tf.config import RSTGConfig
from rstg_tf.models import ModelConfig, build_model
from rstg_tf.models.streaming import StreamingClassifier

SMALL = RSTGConfig(node_dim=8, message_dim=8, num_iterations=2)


@pytest.mark.parametrize("readout", ["mean_time", "last_step"])
def test_steps_equal_the_clip(readout):
    model = build_model(ModelConfig(num_frames=4, num_filters=8, dropout=0.3,
                                    rstg=SMALL.replace(readout=readout)))
    clips = np.random.default_rng(0).integers(0, 255, (2, 4, 64, 64, 1), dtype=np.uint8)
    stream = StreamingClassifier(model)
    assert [layer.name for layer in stream.per_frame] == ["backbone"]
    assert [layer.name for layer in stream.head] == ["dropout", "classifier"]
    state = stream.initial_state(2)
    for t in range(4):
        logits, state = stream.step(clips[:, t], state)
    np.testing.assert_allclose(np.asarray(logits), np.asarray(model(clips)),
                               rtol=1e-4, atol=1e-4)


def test_models_without_an_online_mode_are_refused():
    with pytest.raises(ValueError, match="0 RSTG blocks"):
        StreamingClassifier(build_model(ModelConfig(name="mean_lstm", num_frames=2,
                                                    num_filters=8, hidden=8)))
    with pytest.raises(ValueError, match="no online mode: it needs a recurrent schedule"):
        StreamingClassifier(build_model(ModelConfig(
            num_frames=2, num_filters=8, rstg=SMALL.replace(schedule="space_only"))))
