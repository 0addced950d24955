"""graft.datasets: demo and benchmark data, prepared from Debian packages.

Real datasets written as the layout users have for their own images,
``DIR/<class_name>/<file>``, deterministic for a seed, published atomically with a
manifest (folder_writer): openclipart (the demo's clip art), Fashion-MNIST (the
benchmark). A new dataset (e.g. text for a text modality) is one module here.

May import: graft.contract, graft.images. Nothing of the pipeline, the trainer or
serving: the pipeline reads what these write like any user's folder.
"""
