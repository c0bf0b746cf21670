"""Training, backbone pretraining and evaluation (TensorFlow + Keras ``model.fit``)."""
