"""ImageFolderExampleGen: DIR/<class>/<image> -> tf.Examples (image_bytes, label, image_id)."""
