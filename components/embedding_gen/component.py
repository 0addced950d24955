"""EmbeddingGen: runs the frozen backbone once over every example and writes, per split,
``image_id``, ``label_id``, the image's ``content_sha256`` and its ``embedding``.

Reads ExampleGen's examples (Transform only computes the label vocabulary; it does not
copy every image again) and gives each record its label's index in Transform's
vocabulary. The Trainer's phase 1 fits the head on these vectors and never decodes an
image. Vectors come from a cache under the pipeline root that
outlives runs (cache.py), keyed by backbone, size and decoding, so a run embeds only the
images it has not seen. Beam-native (BaseBeamExecutor): the same step runs on Dataflow or
Flink with the pipeline's Beam arguments.

Several views (an ensemble of backbones, or one backbone at several input sizes) are
embedded in the same pass, each with its own model and its own cache key; a record's
vector is their concatenation, and the artifact lists the views with their lengths
(contract.PROP_VIEWS) so the trainer can split it again.
"""
from __future__ import annotations

import json
import os
from typing import Dict, List

from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import artifact, channel, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from graft import contract
from graft.components.embedding_gen import executor


class Embeddings(artifact.Artifact):
    """Per split (Split-<name>/), TFRecords (one file per cache bucket, uncompressed) of
    tf.Examples with image_id, label_id, content_sha256 and embedding: the float32 [dim]
    vector as little-endian raw bytes (tf.io.decode_raw(x, tf.float32) reads it back)."""
    TYPE_NAME = "graft.Embeddings"  # KFP v2 wants <namespace>.<Name>
    # The split names are a custom property (contract.PROP_SPLIT_NAMES), not a typed one:
    # KFP v2's compiler accepts typed properties only on the types it has a schema for.


class AdaptedBackbones(artifact.Artifact):
    """Backbones whose BatchNorm statistics were re-estimated on the target images
    (AdaBN): one TF-Hub SavedModel per view under view-<i>/, listed with their
    fingerprints in the custom property contract.PROP_ADAPTED."""
    TYPE_NAME = "graft.AdaptedBackbones"


def adapted_views(adapted: artifact.Artifact) -> List[Dict]:
    """The adapted views as recorded, each with ``path``: where its module is. The one
    reader of the property, for EmbeddingGen and the Trainer."""
    views = json.loads(adapted.get_string_custom_property(contract.PROP_ADAPTED))
    return [dict(v, path=os.path.join(adapted.uri, v["dir"])) for v in views]


class EmbeddingGenSpec(ComponentSpec):
    PARAMETERS = {
        # JSON list of {"backbone": handle, "fingerprint": what identifies its weights,
        # "image_size": px}: every view's vector, concatenated in this order. Handles are
        # resolved in the worker.
        "views": ExecutionParameter(type=str),
        "batch_size": ExecutionParameter(type=int),
        "cache_dir": ExecutionParameter(type=str),            # '' = no cache
        "modality": ExecutionParameter(type=str, optional=True),  # "image" (default) or "text"
    }
    INPUTS = {"examples": ChannelParameter(type=standard_artifacts.Examples),
              # Transform's output: its label vocabulary gives each record its label_id.
              "transform_graph": ChannelParameter(type=standard_artifacts.TransformGraph),
              # With AdaBN: the adapted modules replace the views' backbones.
              "adapted_backbones": ChannelParameter(type=AdaptedBackbones, optional=True)}
    OUTPUTS = {"embeddings": ChannelParameter(type=Embeddings)}


class EmbeddingGen(base_component.BaseComponent):
    SPEC_CLASS = EmbeddingGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, examples, transform_graph, views: List[Dict], cache_dir: str,
                 batch_size: int = 64, modality: str = "image", adapted_backbones=None):
        super().__init__(spec=EmbeddingGenSpec(
            examples=examples, transform_graph=transform_graph, views=json.dumps(views),
            batch_size=batch_size, cache_dir=cache_dir, modality=modality,
            adapted_backbones=adapted_backbones, embeddings=channel.Channel(type=Embeddings)))
