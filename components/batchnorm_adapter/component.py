"""BatchNormAdapter: domain adaptation (AdaBN) before the features are computed.

Between Transform and EmbeddingGen, when ``train.adapt_batchnorm`` is on: every view's
backbone gets its BatchNorm statistics re-estimated on the target domain's images - the
training images, plus an optional folder of unlabelled images from where the model will
serve (``data.unlabeled``). Weights stay frozen; only the moving statistics change, and
which variables changed is measured and recorded. The adapted modules (one per view) are
what EmbeddingGen embeds with and what the Trainer exports.
"""
from __future__ import annotations

import json
from typing import Dict, List

from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import channel, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from graft.components.batchnorm_adapter import executor
from graft.components.embedding_gen.component import AdaptedBackbones

# The statistics are estimated on at most this many images: those with the smallest
# content hashes (a uniform sample that does not depend on file or record order, so the
# same data gives the same adapted module and the embedding cache stays valid). AdaBN's
# statistics settle within a few hundred images.
MAX_IMAGES = 4096


class BatchNormAdapterSpec(ComponentSpec):
    PARAMETERS = {
        "views": ExecutionParameter(type=str),        # as EmbeddingGen's
        "unlabeled": ExecutionParameter(type=str),    # '' or a folder of images (any layout)
        "max_images": ExecutionParameter(type=int),
        "batch_size": ExecutionParameter(type=int),
    }
    INPUTS = {"examples": ChannelParameter(type=standard_artifacts.Examples)}
    OUTPUTS = {"adapted_backbones": ChannelParameter(type=AdaptedBackbones)}


class BatchNormAdapter(base_component.BaseComponent):
    SPEC_CLASS = BatchNormAdapterSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, examples, views: List[Dict], unlabeled: str = "",
                 max_images: int = MAX_IMAGES, batch_size: int = 64):
        super().__init__(spec=BatchNormAdapterSpec(
            examples=examples, views=json.dumps(views), unlabeled=unlabeled,
            max_images=max_images, batch_size=batch_size,
            adapted_backbones=channel.Channel(type=AdaptedBackbones)))
