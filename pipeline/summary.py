"""What a run did, read back from ML Metadata and its artifacts, in plain words."""
from __future__ import annotations

import json
import os
from typing import Dict, List

from graft import contract
from graft.pipeline.config import GraftConfig
from graft.trainer.report import TrainingReport


def _latest_run_context(store, pipeline_name: str):
    """The run context of this pipeline's newest execution (several pipelines,
    e.g. two models, may share one pipeline root and so one MLMD database)."""
    pipeline_ctx = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline_ctx is None:
        return None
    executions = store.get_executions_by_context(pipeline_ctx.id)
    if not executions:
        return None
    newest = max(executions, key=lambda e: e.id)
    run_type = store.get_context_type("pipeline_run").id
    runs = [c for c in store.get_contexts_by_execution(newest.id) if c.type_id == run_type]
    return runs[0] if runs else None


def options_used(cfg: GraftConfig) -> Dict:
    """The transfer options of this run (also in the pushed model's graft_model.json)."""
    t = cfg.train
    return {"views": [v.name for v in t.views()],
            "combine": t.combine.value if len(t.views()) > 1 else None,
            "head": t.heads,
            "adapt_batchnorm": t.adapt_batchnorm, "unlabeled": cfg.data.unlabeled or None,
            "compare_scratch": t.compare_scratch, "fine_tune": t.fine_tune.value}


def scratch_gain(s: Dict) -> str:
    """"transfer +29.6 points over training from scratch on your data (...)" or ""."""
    scratch = ((s.get("training") or {}).get("scratch") or {})
    acc = (s.get("evaluation") or {}).get("accuracy")
    if not scratch.get("ran") or scratch.get("held_out_accuracy") is None or acc is None:
        return ""
    gain = 100 * (acc - scratch["held_out_accuracy"])
    verdict = ("transfer pays on this data" if gain >= 2 else
               "transfer does not beat training from scratch here" if gain <= 0 else
               "transfer gains little here")
    return (f"transfer {gain:+.1f} points over training from scratch on your data: the "
            f"transfer model {acc:.3f}, a small CNN trained from scratch "
            f"({scratch['parameters']:,} parameters, {scratch['image_size']} px, "
            f"{scratch['epochs']} epochs, {scratch['seconds']:.0f} s) "
            f"{scratch['held_out_accuracy']:.3f} on the same {scratch['held_out_images']} "
            f"held-out {'images' if s.get('modality') != 'text' else 'texts'} - {verdict}")


def read(cfg: GraftConfig, preflight=None, wall_time: float = 0.0) -> Dict:
    import ml_metadata as mlmd
    from tfx.orchestration import metadata

    store = mlmd.MetadataStore(metadata.sqlite_metadata_connection_config(cfg.metadata_path))
    run_ctx = _latest_run_context(store, cfg.pipeline_name)
    out: Dict = {"pipeline_name": cfg.pipeline_name, "model_name": cfg.model_name,
                 "modality": cfg.train.modality, "options": options_used(cfg),
                 "wall_time_s": round(wall_time, 1)}
    if preflight is not None:
        out["data"] = {"counts": preflight.counts, "eval_counts": preflight.eval_counts,
                       "majority_accuracy": preflight.majority_accuracy,
                       **preflight.left_out}
    if run_ctx is None:
        return out
    out["run_id"] = run_ctx.name
    artifacts = store.get_artifacts_by_context(run_ctx.id)
    types = {t.id: t.name for t in store.get_artifact_types()}
    by_type: Dict[str, List] = {}
    for a in artifacts:
        by_type.setdefault(types.get(a.type_id, "?"), []).append(a)

    def newest(type_name):
        items = by_type.get(type_name, [])
        return max(items, key=lambda a: a.id) if items else None

    def prop(a, key):
        if a is None or key not in a.custom_properties:
            return None
        v = a.custom_properties[key]
        return v.string_value or v.int_value

    ingested = [a for a in by_type.get("Examples", [])
                if contract.PROP_INGEST_REPORT in a.custom_properties]
    report = (prop(max(ingested, key=lambda a: a.id), contract.PROP_INGEST_REPORT)
              if ingested else None)
    if ingested:
        out["examples_uri"] = max(ingested, key=lambda a: a.id).uri
    if report:
        out.setdefault("data", {})["ingest"] = json.loads(report)
    rep = newest("graft.BlessingReport")
    if rep is not None and os.path.exists(os.path.join(rep.uri, contract.REASON_JSON)):
        with open(os.path.join(rep.uri, contract.REASON_JSON)) as f:
            out["evaluation"] = json.load(f)
    pushed = newest("PushedModel")
    if pushed is not None:
        out["pushed"] = bool(prop(pushed, contract.PROP_PUSHED))
        out["not_pushed_reason"] = prop(pushed, contract.PROP_NOT_PUSHED_REASON)
        if out["pushed"]:
            out["pushed_version"] = int(prop(pushed, contract.PROP_VERSION))
            out["pushed_path"] = prop(pushed, contract.PROP_PUSHED_DESTINATION)
    emb = newest("graft.Embeddings")
    if emb is not None and contract.PROP_EMBEDDED in emb.custom_properties:
        out["embedding"] = {"embedded": prop(emb, contract.PROP_EMBEDDED) or 0,
                            "reused": prop(emb, contract.PROP_REUSED) or 0,
                            "seconds": float(prop(emb, contract.PROP_EMBED_SECONDS) or 0),
                            "model_seconds": float(
                                prop(emb, contract.PROP_EMBED_MODEL_SECONDS) or 0),
                            "dim": prop(emb, contract.PROP_EMBEDDING_DIM) or 0}
    run_report = newest(contract.RUN_REPORT_TYPE)
    if run_report is not None:
        out["report"] = os.path.join(run_report.uri, contract.RUN_REPORT_FILE)
    model = newest("Model")
    if model is not None:
        out["model_uri"] = model.uri
    runs = newest("ModelRun")
    report_file = os.path.join(runs.uri, contract.TRAINING_REPORT_FILE) if runs else ""
    if report_file and os.path.exists(report_file):
        out["training"] = TrainingReport.read(report_file).to_json()
    out["component_seconds"] = _component_times(store, run_ctx)
    return out


def _component_times(store, run_ctx) -> Dict[str, float]:
    times = {}
    types = {t.id: t.name for t in store.get_execution_types()}
    for e in sorted(store.get_executions_by_context(run_ctx.id), key=lambda e: e.id):
        name = e.custom_properties["__tfx_node_id__"].string_value \
            if "__tfx_node_id__" in e.custom_properties else types.get(e.type_id, "?")
        times[name.split(".")[-1]] = round(
            (e.last_update_time_since_epoch - e.create_time_since_epoch) / 1000.0, 1)
    return times


def format_text(s: Dict) -> str:
    lines = ["", "== graft run summary =="]
    noun = "texts" if s.get("modality") == "text" else "images"
    if s.get("nothing_new"):
        spans = f" (spans {', '.join(s['spans'])})" if s.get("spans") else ""
        return "\n".join(lines + [
            f"nothing new since run {s['since_run']} ({s['since_outcome']}): the same data"
            f"{spans}, config, code and backbone, so no TFX component ran "
            f"({s['wall_time_s']:.1f} s).",
            "next: add images (or a new span folder), or change the config, and run again; "
            "`graft runs` lists what each run did."])
    if s.get("spans"):
        lines.append(f"spans: {', '.join(s['spans'])}")
    d = s.get("data", {})
    if d.get("counts"):
        total = sum(d["counts"].values())
        lines.append(f"data: {total} {noun}, {len(d['counts'])} classes: "
                     + ", ".join(f"{k} {v}" for k, v in sorted(d["counts"].items())))
    skipped = d.get("skipped") or (d.get("ingest") or {}).get("skipped") or []
    if skipped:
        lines.append(f"skipped {len(skipped)} files:")
        for item in skipped[:10]:
            lines.append(f"  {item['image_id']}: {item['reason']}")
        if len(skipped) > 10:
            lines.append(f"  ... and {len(skipped) - 10} more")
    duplicates = d.get("duplicates") or (d.get("ingest") or {}).get("duplicates") or []
    conflicts = [x for x in duplicates if x["kind"] == contract.DUPLICATE_LABEL_CONFLICT]
    if len(duplicates) > len(conflicts):
        lines.append(f"identical copies kept once: {len(duplicates) - len(conflicts)} files left "
                     f"out (a copy on both sides of the split would inflate held-out accuracy)")
    if conflicts:
        lines.append(f"label conflicts: {len(conflicts)} files left out - the same image is "
                     f"filed under two or more classes; keep each in one class folder:")
        for item in conflicts[:5]:
            lines.append(f"  {item['image_id']}: {item['reason']}")
        if len(conflicts) > 5:
            lines.append(f"  ... and {len(conflicts) - 5} more (all listed in the --json summary)")
    e = s.get("embedding")
    if e and "EmbeddingGen" in s.get("cached", []):
        lines.append("embedding: nothing new - the examples are unchanged (cached step)")
    elif e:
        rate = (f"; backbone {e['embedded'] / e['model_seconds']:.0f} {noun}/s"
                if e["embedded"] and e.get("model_seconds") else "")
        lines.append(f"embedding: embedded {e['embedded']} new {noun}, reused {e['reused']} from "
                     f"cache ({e['dim']}-d; step {e['seconds']:.1f} s{rate})")
    o = s.get("options") or {}
    extra = []
    if len(o.get("views") or []) > 1:
        chosen = ((s.get("training") or {}).get("phase1") or {}).get("combine")
        how = (f"{chosen}, chosen by cross-validation" if o.get("combine") == "auto" and chosen
               else o.get("combine"))
        extra.append(f"{len(o['views'])} views ({', '.join(o['views'])}) combined by {how}")
    if (o.get("head") or ["logistic"]) != ["logistic"]:
        extra.append("head " + " + ".join(o["head"])
                     + (", probabilities averaged" if len(o["head"]) > 1 else ""))
    if o.get("adapt_batchnorm"):
        extra.append("BatchNorm adapted to your images (AdaBN)"
                     + (f", unlabelled images from {o['unlabeled']}" if o.get("unlabeled") else ""))
    if o.get("compare_scratch"):
        extra.append("compared with training from scratch")
    if extra:
        lines.append("options: " + "; ".join(extra))
    if s.get("training"):
        lines.append(TrainingReport.from_json(s["training"]).describe(noun))
    ev = s.get("evaluation")
    if ev:
        how = ev.get("scored_on") or ""
        lines.append("evaluation on the held-out split:")
        if how == "vectors":
            lines.append("  scored: the models' heads on its cached vectors")
        elif how.startswith("images: "):
            lines.append(f"  scored: the full models on its {noun} ({how.split(': ', 1)[1]})")
        lines.extend("  " + l for l in ev["text"].rstrip().splitlines())
    gain = scratch_gain(s)
    if gain:
        lines.append(gain)
    if s.get("pushed") and "VersionedPusher" in s.get("cached", []):
        lines.append(f"pushed: nothing new - every component was cached (inputs unchanged); "
                     f"version {s['pushed_version']} was pushed by an earlier run")
    elif s.get("pushed"):
        lines.append(f"pushed: version {s['pushed_version']} -> {s['pushed_path']}")
    elif s.get("not_pushed_reason"):
        lines.append(f"pushed: nothing new - {s['not_pushed_reason']}")
    elif "pushed" in s:
        lines.append("pushed: nothing (the model was not blessed; the model in production "
                     "is unchanged)")
    if s.get("component_seconds"):
        lines.append("time per component: " + ", ".join(
            f"{k} {v:.0f}s" for k, v in s["component_seconds"].items()))
    lines.append(f"total: {s.get('wall_time_s', 0):.0f} s")
    if s.get("report"):
        lines.append(f"report: {s['report']}  (graft report --open)")
    if s.get("pushed"):
        lines.append(f"next: graft serve --model_name {s['model_name']} --model_base_path "
                     f"{os.path.dirname(s['pushed_path'])}")
    elif s.get("not_pushed_reason"):
        lines.append(f"next: add {noun} or change the config, then run again")
    elif "pushed" in s:
        lines.append("next: add or fix data (see the reason above) and run again")
    return "\n".join(lines)
