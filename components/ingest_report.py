"""What an ExampleGen left out, and why: the same JSON for images and texts, on the
Examples artifact (custom property ``ingest_report``) and as ``ingest_report.json``
beside its splits. The run summary and the run report read it."""
from __future__ import annotations

import json
import os
from typing import Dict, List, Tuple

from graft import contract


def left_out(skipped: List[Tuple[str, str]], duplicates: List[Tuple[str, str, str]]
             ) -> Dict[str, List[Dict[str, str]]]:
    """Skipped inputs (id, reason) and duplicates (id, kind, reason) as JSON. The key is
    "image_id" for texts too (there it holds "file:line"): readers share one format."""
    return {"skipped": [{"image_id": i, "reason": r} for i, r in skipped],
            "duplicates": [{"image_id": i, "kind": k, "reason": r} for i, k, r in duplicates]}


def publish(examples_artifacts, result) -> None:
    """Records a scan result (root, records, counts, left_out()) on every output artifact."""
    import tensorflow as tf
    report = {"root": result.root, "examples": len(result.records), "counts": result.counts,
              **result.left_out()}
    for examples in examples_artifacts:
        examples.set_string_custom_property(contract.PROP_INGEST_REPORT, json.dumps(report))
        with tf.io.gfile.GFile(os.path.join(examples.uri, contract.INGEST_REPORT_FILE), "w") as f:
            f.write(json.dumps(report, indent=2))
