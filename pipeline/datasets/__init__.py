"""Real datasets from Debian packages, written as the layout users have for their
own images: ``DIR/<class_name>/<file>``. Deterministic for a seed."""
