"""The facts a run report shows, read from the run's artifacts into plain JSON.

No plotting and no model here: executor.py adds the held-out mistakes and render.py
draws. Every reader tolerates a missing input (a first run has no champion; a run
without phase 2 has no epochs), so the report shows what exists and says what does not.
"""
from __future__ import annotations

import json
import os
from typing import Dict, List, Optional

import tensorflow as tf
from tensorflow_metadata.proto.v0 import statistics_pb2

from graft import contract


def _read_json(path: str) -> Optional[Dict]:
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def model_info(model_uri: str) -> Dict:
    """graft_model.json of a Model artifact (classes, backbone, size, training report)."""
    from tfx.utils import path_utils
    path = os.path.join(path_utils.serving_model_path(model_uri), contract.ASSETS_EXTRA,
                        contract.MODEL_INFO_FILE)
    return _read_json(path) or {}


def ingest(examples) -> Dict:
    """Per class counts, skipped files and duplicates over the examples' ingest reports
    (one per span of the window)."""
    counts: Dict[str, int] = {}
    skipped: List[Dict] = []
    duplicates: List[Dict] = []
    for a in examples:
        if not a.has_custom_property(contract.PROP_INGEST_REPORT):
            continue
        rep = json.loads(a.get_string_custom_property(contract.PROP_INGEST_REPORT))
        for k, v in (rep.get("counts") or {}).items():
            counts[k] = counts.get(k, 0) + v
        skipped += rep.get("skipped") or []
        duplicates += rep.get("duplicates") or []
    conflicts = [d for d in duplicates if d.get("kind") == contract.DUPLICATE_LABEL_CONFLICT]
    return {"counts": counts, "skipped": skipped, "copies": len(duplicates) - len(conflicts),
            "conflicts": conflicts, "spans": sorted({int(a.span) for a in examples})}


def statistics(stats_artifact) -> Dict:
    """TFDV's statistics per split: example count and, per feature, what is worth seeing
    (bytes per image, label values)."""
    out: Dict = {}
    for split in (contract.SPLIT_TRAIN, contract.SPLIT_EVAL):
        path = os.path.join(stats_artifact.uri, f"Split-{split}", "FeatureStats.pb")
        if not tf.io.gfile.exists(path):
            continue
        with tf.io.gfile.GFile(path, "rb") as f:
            stats = statistics_pb2.DatasetFeatureStatisticsList.FromString(f.read())
        for ds in stats.datasets:
            features = []
            for feat in ds.features:
                name = feat.path.step[-1] if feat.path.step else feat.name
                row = {"feature": name, "type": statistics_pb2.FeatureNameStatistics.Type.Name(
                    feat.type)}
                if feat.HasField("bytes_stats"):
                    b = feat.bytes_stats
                    row.update(present=int(b.common_stats.num_non_missing),
                               detail=f"{b.avg_num_bytes / 1024:.1f} kB on average "
                                      f"({b.min_num_bytes / 1024:.1f}-{b.max_num_bytes / 1024:.1f})")
                elif feat.HasField("string_stats"):
                    s = feat.string_stats
                    top = ", ".join(f"{v.value} {int(v.frequency)}" for v in s.top_values[:8])
                    row.update(present=int(s.common_stats.num_non_missing),
                               detail=f"{s.unique} unique" + (f": {top}" if top and
                                                              name == contract.FEATURE_LABEL
                                                              else ""))
                features.append(row)
            out[split] = {"examples": int(ds.num_examples), "features": features}
    return out


def training(model_run_uri: str) -> Optional[Dict]:
    return _read_json(os.path.join(model_run_uri, contract.TRAINING_REPORT_FILE))


def evaluation(blessing_report_uri: str) -> Optional[Dict]:
    return _read_json(os.path.join(blessing_report_uri, contract.REASON_JSON))


def pushed(pushed_model) -> Dict:
    props = pushed_model.mlmd_artifact.custom_properties

    def get(key):
        if key not in props:
            return None
        return props[key].string_value or props[key].int_value

    out = {"pushed": bool(get(contract.PROP_PUSHED)),
           "not_pushed_reason": get(contract.PROP_NOT_PUSHED_REASON)}
    if out["pushed"]:
        dest = get(contract.PROP_PUSHED_DESTINATION)
        out.update(version=int(get(contract.PROP_VERSION)), path=dest,
                   provenance=json.loads(get(contract.PROP_PROVENANCE) or "{}"),
                   model_card=os.path.join(dest, contract.ASSETS_EXTRA, contract.MODEL_CARD_MD))
    return out


def embedding(emb) -> Optional[Dict]:
    if emb is None or not emb.has_custom_property(contract.PROP_EMBEDDED):
        return None
    p = emb.mlmd_artifact.custom_properties
    return {"embedded": p[contract.PROP_EMBEDDED].int_value,
            "reused": p[contract.PROP_REUSED].int_value,
            "dim": p[contract.PROP_EMBEDDING_DIM].int_value}
