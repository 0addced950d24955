"""Copies the blessed SavedModel to <serving_dir>/<model_name>/<N> atomically."""
from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, List

from tfx.dsl.components.base import base_executor
from tfx.types import artifact, artifact_utils
from tfx.utils import path_utils

from graft import contract, files
from graft.components.versioned_pusher import model_card, versions


class Executor(base_executor.BaseExecutor):

    def Do(self, input_dict: Dict[str, List[artifact.Artifact]],
           output_dict: Dict[str, List[artifact.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        model = artifact_utils.get_single_instance(input_dict["model"])
        blessing = artifact_utils.get_single_instance(input_dict["model_blessing"])
        pushed = artifact_utils.get_single_instance(output_dict["pushed_model"])
        if blessing.get_int_custom_property(contract.PROP_BLESSED) != 1:
            pushed.set_int_custom_property(contract.PROP_PUSHED, 0)
            return
        base = os.path.join(exec_properties["serving_dir"], exec_properties["model_name"])
        already = versions.version_of_model(base, model.id)
        if already is not None:
            # A re-run with nothing changed: the cached model is already served.
            pushed.set_int_custom_property(contract.PROP_PUSHED, 0)
            pushed.set_string_custom_property(
                contract.PROP_NOT_PUSHED_REASON,
                f"this model is already version {already} (nothing changed since it was pushed)")
            return
        source = path_utils.serving_model_path(model.uri)
        provenance = json.loads(exec_properties.get("provenance_json") or "{}")
        provenance.update({
            "model_artifact_id": model.id, "model_uri": model.uri,
            "blessing_artifact_id": blessing.id,
            "pipeline_run_id": self._context.pipeline_run_id if self._context else None,
            "pushed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        })
        provenance.setdefault("model_name", exec_properties["model_name"])
        reports = input_dict.get("blessing_report") or []
        r = None
        if reports:
            reason = os.path.join(reports[0].uri, contract.REASON_JSON)
            if files.exists(reason):
                r = json.loads(files.read_text(reason))
                provenance["evaluation"] = {k: r.get(k) for k in (
                    "accuracy", "champion_accuracy", "per_class_accuracy", "headline")}
        info = json.loads(files.read_text(os.path.join(source, contract.ASSETS_EXTRA,
                                                        contract.MODEL_INFO_FILE)))

        def card_files(version: int) -> Dict[str, str]:
            card = model_card.build(info, r, dict(provenance, version=version), version)
            return {contract.MODEL_CARD_JSON: json.dumps(card, indent=2),
                    contract.MODEL_CARD_MD: model_card.render_markdown(card)}

        version = versions.publish(source, base, provenance, extra_files=card_files)
        removed = versions.prune(base, exec_properties["keep_last"])
        dest = os.path.join(base, str(version))
        pushed.set_int_custom_property(contract.PROP_PUSHED, 1)
        pushed.set_string_custom_property(contract.PROP_PUSHED_DESTINATION, dest)
        pushed.set_string_custom_property(contract.PROP_PUSHED_VERSION, str(version))
        pushed.set_int_custom_property(contract.PROP_VERSION, version)
        pushed.set_string_custom_property(contract.PROP_PRUNED, json.dumps(removed))
        pushed.set_string_custom_property(contract.PROP_PROVENANCE, json.dumps(provenance))
        # The artifact itself holds a copy too: rollback can restore a pruned version from it.
        files.copy_tree(dest, os.path.join(pushed.uri, str(version)))
