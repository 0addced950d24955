"""The Evaluator's executor: TFX's own, given the models' heads and EmbeddingGen's
held-out vectors when they compute what the models compute.

Both models' heads are scored on the vectors only when each has a head export whose
vectors are exactly this run's (the same backbones, weights, input sizes and decoding:
the Embeddings' cache key, recorded by the Trainer) - and the Trainer writes a head
export only when the model's backbones are the frozen ones and the head reproduced the
full model's scores on training inputs. Otherwise (a fine-tuned backbone, a champion
trained on another backbone or by an older graft) both full models run on the images,
as before. The evaluation artifact says which (contract.PROP_SCORED_ON).
"""
from __future__ import annotations

import json
import os
from typing import Dict, List, Optional, Tuple

from absl import logging
from tfx.components.evaluator import executor as evaluator_executor
from tfx.types import artifact, artifact_utils, standard_artifacts, standard_component_specs
from tfx.utils import path_utils

from graft import contract, files

EMBEDDINGS_KEY = "embeddings"
_ROLES = ((standard_component_specs.MODEL_KEY, "challenger"),
          (standard_component_specs.BASELINE_MODEL_KEY, "champion"))


def head_info(model: artifact.Artifact) -> Optional[Dict]:
    """The model's head export's facts (graft_head.json), or None if it has none."""
    path = os.path.join(path_utils.serving_model_path(
        os.path.join(model.uri, contract.HEAD_MODEL_DIR)), contract.ASSETS_EXTRA,
        contract.HEAD_INFO_FILE)
    import tensorflow as tf
    try:  # the artifact may be on gs:// (Kubeflow)
        return json.loads(files.read_text(path)) if files.exists(path) else None
    except (OSError, ValueError, tf.errors.OpError):
        return None


def _head_artifact(model: artifact.Artifact) -> artifact.Artifact:
    """The model artifact as it is, but at its head export's directory."""
    head = standard_artifacts.Model()
    head.set_mlmd_artifact(type(model.mlmd_artifact)())
    head.mlmd_artifact.CopyFrom(model.mlmd_artifact)
    head.uri = os.path.join(model.uri, contract.HEAD_MODEL_DIR)
    return head


def on_vectors(input_dict: Dict[str, List[artifact.Artifact]],
               embeddings: List[artifact.Artifact]
               ) -> Tuple[Optional[Dict[str, List[artifact.Artifact]]], str]:
    """(the inputs with the heads and the vectors in place of the models and the
    examples, "") - or (None, why not)."""
    if not embeddings:
        return None, "no vectors were given"
    emb = embeddings[0]
    key = emb.get_string_custom_property(contract.PROP_EMBEDDING_KEY)
    out = dict(input_dict)
    for k, role in _ROLES:
        models = input_dict.get(k) or []
        if not models:
            continue
        info = head_info(models[0])
        if info is None:
            return None, (f"the {role} has no head export: a fine-tuned backbone, or a "
                          "model from before graft wrote one")
        if not key or info.get("embedding_key") != key:
            return None, f"the {role}'s head takes other vectors: another backbone or input size"
        out[k] = [_head_artifact(models[0])]
    if standard_component_specs.MODEL_KEY not in out:
        return None, "there is no challenger"
    examples = standard_artifacts.Examples()
    examples.uri = emb.uri
    examples.split_names = emb.get_string_custom_property(contract.PROP_SPLIT_NAMES)
    out[standard_component_specs.EXAMPLES_KEY] = [examples]
    return out, ""


class Executor(evaluator_executor.Executor):

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        input_dict = dict(input_dict)
        embeddings = input_dict.pop(EMBEDDINGS_KEY, None) or []
        swapped, why = on_vectors(input_dict, embeddings)
        scored_on = "vectors" if swapped else f"images: {why}"
        logging.info("Evaluator: scoring the models on the held-out %s", scored_on)
        artifact_utils.get_single_instance(output_dict[
            standard_component_specs.EVALUATION_KEY]).set_string_custom_property(
                contract.PROP_SCORED_ON, scored_on)
        super().Do(swapped or input_dict, output_dict, exec_properties)
