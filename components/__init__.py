"""graft.components: custom TFX components, one folder each, laid out as TFX's own.

Each has ``component.py`` (the spec: channels and parameters) and, where the work is
more than a few lines, ``executor.py`` (the work in ``Do()``) plus pure helpers
beside it: image_folder_example_gen (scan), tfds_example_gen, anomalies_gate,
blessing_report (reading), versioned_pusher (versions); splits holds the hash split
they share. A text ExampleGen or an EmbeddingGen is a new folder here.

May import: graft.contract, graft.images, graft.backbones (an embedding step runs a
backbone). Nothing of the pipeline, the trainer, serving, datasets or the CLI.
"""
