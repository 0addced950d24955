"""What a model takes in - images or text - decided in this one place.

A modality names the examples' raw input feature (also the exported model's serving
input and what Transform passes through), the id feature the split is hashed on, and
how a batch of raw inputs becomes the backbone's input: images are decoded and resized
in the graph (image_input); texts go to the backbone as strings, which tokenises them
itself (text_module). EmbeddingGen, the trainer, the export and the run report ask a
Modality instead of naming image_bytes; a third modality is one more entry here.
"""
from __future__ import annotations

import dataclasses
from typing import Dict

from graft import contract


@dataclasses.dataclass(frozen=True)
class Modality:
    name: str
    feature: str       # raw input: the examples' feature and the serving signature's input
    id_feature: str    # what the hash split and the validation slice are keyed on
    noun: str          # "image" / "text", for messages

    def prepare(self, raw, size: int = 0, max_pixels: int = contract.MAX_IMAGE_PIXELS):
        """A [N] string tensor of raw inputs -> the backbone's input batch."""
        import tensorflow as tf
        if self.name == "image":
            from graft.backbones import image_input
            return image_input.decode_batch(raw, size, max_pixels)
        return tf.reshape(raw, [-1])

    def sample_input(self) -> bytes:
        """One raw input any backbone of this modality takes (a black 1x1 PNG, a short
        text): EmbeddingGen warms its backbone up with a batch of it."""
        if self.name == "image":
            import tensorflow as tf
            return tf.io.encode_png(tf.zeros([1, 1, 3], tf.uint8)).numpy()
        return b"warm up"

    def version(self) -> str:
        """Part of the embedding cache's key: a change to how inputs are prepared
        re-embeds. Text is prepared inside the backbone, whose fingerprint covers it."""
        if self.name == "image":
            from graft.backbones import image_input
            return image_input.preprocessing_version()
        return "text-1"


IMAGE = Modality("image", contract.FEATURE_IMAGE, contract.FEATURE_ID, "image")
TEXT = Modality("text", contract.FEATURE_TEXT, contract.FEATURE_TEXT_ID, "text")
MODALITIES: Dict[str, Modality] = {m.name: m for m in (IMAGE, TEXT)}


def of(name: str) -> Modality:
    if name not in MODALITIES:
        raise ValueError(f"unknown modality {name!r}; known: {', '.join(MODALITIES)}")
    return MODALITIES[name]
