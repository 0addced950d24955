"""TfdsExampleGen: an image-classification TFDS dataset -> graft's tf.Examples."""
