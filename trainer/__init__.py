"""graft.trainer: backbones (handles, offline import), the Keras model, input data and export."""
