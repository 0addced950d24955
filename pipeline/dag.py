"""The graft DAG, built by one function from one config.

ingest -> statistics -> schema -> validate (gate) -> transform -> [adapt BatchNorm] -> embed
       -> train
       -> champion (latest blessed) -> evaluate -> blessing report -> push -> run report
"""
from __future__ import annotations

import json
import os
from typing import Dict, List, Optional

import tensorflow_model_analysis as tfma
# TFX's classes from their own modules, not through tfx.v1: importing tfx.v1 imports its
# Google Cloud extensions too (google-cloud-aiplatform: 2.8 s of every run's start, and
# 700 more loggers, which made Beam's pickler - it sets a logger's level for every
# object it pickles - measurably slower).
from tfx.components import ExampleValidator, SchemaGen, StatisticsGen, Transform
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
    LatestBlessedModelStrategy)
from tfx.orchestration import metadata
from tfx.orchestration.pipeline import Pipeline
from tfx.types import standard_artifacts
from tfx.types.channel import Channel

from graft import contract
from graft.backbones import modality as modalities
from graft.components.anomalies_gate.component import AnomaliesGate
from graft.components.batchnorm_adapter.component import BatchNormAdapter
from graft.components.blessing_report.component import BlessingReport
from graft.components.blessing_report.reading import BASELINE, CANDIDATE
from graft.components.embedding_evaluator.component import Evaluator
from graft.components.embedding_gen.component import EmbeddingGen
from graft.components import accuracy_metric, span_window
from graft.components.embedding_trainer.component import Trainer
from graft.components.run_report.component import RunReport
from graft.components.span_window import LatestPerSpanWindow
from graft.components.versioned_pusher.component import VersionedPusher
from graft.pipeline import ingest
from graft.pipeline.config import ConfigError, GraftConfig
from graft.trainer import source_fingerprint
from graft.trainer.options import OPTIONS_KEY

# The trainer is named by import path: the TFX Trainer and Transform import it in their
# own process (or container), and the pipeline never imports TensorFlow model code.
TRANSFORM_FN = "graft.trainer.transform.preprocessing_fn"
RUN_FN = "graft.trainer.task.run_fn"


def effective_floor(cfg: GraftConfig, majority_accuracy: Optional[float]):
    """The absolute floor: the configured one, or majority-class accuracy plus a
    margin when that is higher (a model must beat always guessing the commonest class)."""
    floor, reason = cfg.evaluate.min_accuracy, "configured floor"
    if majority_accuracy is not None:
        beat = majority_accuracy + cfg.evaluate.majority_margin
        if beat > floor:
            floor = min(beat, 0.999)
            reason = (f"majority-class baseline {majority_accuracy:.3f} "
                      f"+ margin {cfg.evaluate.majority_margin:.3f}")
    return floor, reason


def eval_config(cfg: GraftConfig, floor: float) -> tfma.EvalConfig:
    e = cfg.evaluate

    def threshold(lower: float, tolerance: float):
        return tfma.MetricThreshold(
            value_threshold=tfma.GenericValueThreshold(lower_bound={"value": lower}),
            change_threshold=tfma.GenericChangeThreshold(
                direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                absolute={"value": -tolerance - 1e-9}))

    per_class = tfma.MetricThreshold(change_threshold=tfma.GenericChangeThreshold(
        direction=tfma.MetricDirection.HIGHER_IS_BETTER,
        absolute={"value": -e.per_class_max_regression - 1e-9}))
    # model_type given: TFMA otherwise finds it by trying to load each model as a Keras
    # model first (graft's export is not one), 1.3 s per model of every evaluation.
    spec = dict(signature_name=contract.CLASSIFY_SIGNATURE, prediction_key="scores",
                label_key=contract.FEATURE_LABEL_ID, model_type=tfma.TF_GENERIC,
                preprocessing_function_names=[contract.TRANSFORM_SIGNATURE])
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(name=CANDIDATE, **spec),
                     tfma.ModelSpec(name=BASELINE, is_baseline=True, **spec)],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[contract.FEATURE_LABEL])],
        metrics_specs=[tfma.MetricsSpec(
            # Unweighted, so the threshold keys match the computed metrics' keys.
            example_weights=tfma.ExampleWeightOptions(unweighted=True),
            metrics=[
                tfma.MetricConfig(class_name="ExampleCount"),
                # For the run report: counts of (true, predicted) class, both models.
                tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
                # TFMA-native, not the Keras metric of the same name (accuracy_metric.py).
                tfma.MetricConfig(class_name="SparseCategoricalAccuracy",
                                  module=accuracy_metric.__name__, per_slice_thresholds=[
                    tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()],
                                                 threshold=threshold(floor, e.max_regression)),
                    tfma.PerSliceMetricThreshold(
                        slicing_specs=[tfma.SlicingSpec(feature_keys=[contract.FEATURE_LABEL])],
                        threshold=per_class)])])])


# Beam's options that say where the workers' code comes from: the ones TFX checks
# (tfx/utils/dependency_utils.py) before building its own package.
_DEPENDENCY_OPTIONS = ("extra_packages", "setup_file", "requirements_file",
                       "worker_harness_container_image", "sdk_container_image")


def _parse_beam_args(args: List[str]) -> Dict:
    """Beam's own parse of the flags, as TFX parses them; a value Beam's argparse refuses
    is ConfigError in its words, not argparse's usage of every Beam option and an exit."""
    import contextlib
    import io
    from apache_beam.options.pipeline_options import PipelineOptions
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return PipelineOptions(flags=args).get_all_options()
    except SystemExit:
        why = [line for line in err.getvalue().splitlines() if "error:" in line]
        raise ConfigError(f"[pipeline] beam_args: "
                          f"{why[-1].split('error:', 1)[1].strip() if why else args}") from None


def beam_args(cfg: GraftConfig, local: bool) -> List[str]:
    """The pipeline's Beam flags. Given no dependency flag, TFX's Beam components copy
    TFX's whole install and build an sdist of it, in each of the five components (13 s of
    a 120 s demo run, measured, and a temp copy left behind each time), so that remote
    workers can import TFX. The direct runner stages nothing, and a remote runner needs
    graft's code, not TFX's alone: a local run names graft's own setup.py when graft runs
    from a checkout. A compiled (Kubeflow) spec keeps the configured flags: its container
    has graft installed."""
    args = list(cfg.pipeline.beam_args)
    setup_py = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
        contract.__file__))), "setup.py")
    # Parsed as TFX parses them, so every spelling Beam accepts counts.
    given = _parse_beam_args(args)
    workers = given.get("direct_num_workers")
    if isinstance(workers, int) and workers < 0:  # Beam fails later with an IndexError
        raise ConfigError(f"[pipeline] beam_args: --direct_num_workers={workers}: give 1 or "
                          f"more workers, or 0 for one per CPU core")
    if local and os.path.exists(setup_py) and not any(given.get(o) for o in _DEPENDENCY_OPTIONS):
        args.append(f"--setup_file={setup_py}")
    return args


def create_pipeline(cfg: GraftConfig, majority_accuracy: Optional[float] = None,
                    local: bool = True, backbone_fingerprints: Optional[Dict[str, str]] = None
                    ) -> Pipeline:
    """The DAG. local=False (Kubeflow) leaves ML Metadata to the orchestrator; without
    ``backbone_fingerprints`` (Kubeflow) the workers fingerprint the backbones."""
    root = ingest.absolute(cfg.pipeline.root)
    source = ingest.FORMATS[cfg.data.format]
    example_gen = source.example_gen(cfg.data)
    # The new data is validated on its own (StatisticsGen takes one Examples artifact);
    # with span folders the model trains and is evaluated on the window of the latest
    # spans, which TFX resolves from ML Metadata (span_window.py).
    examples, window = example_gen.outputs["examples"], None
    if ingest.span_window(cfg.data):
        # A channel by producer (not example_gen.outputs, which TFX narrows to this run's
        # artifacts): every span this pipeline's ExampleGen ever ingested, across runs.
        window = Resolver(
            strategy_class=LatestPerSpanWindow,
            config={"range_config": span_window.rolling(cfg.data.spans)},
            examples=Channel(type=standard_artifacts.Examples,
                                     producer_component_id=example_gen.id,
                                     output_key="examples")).with_id("span_window")
        window.add_upstream_node(example_gen)  # after this run's span is ingested
        examples = window.outputs["examples"]

    statistics = StatisticsGen(examples=example_gen.outputs["examples"])
    if cfg.pipeline.schema:
        schema = ImportSchemaGen(
            schema_file=ingest.absolute(cfg.pipeline.schema))
    else:
        schema = SchemaGen(statistics=statistics.outputs["statistics"],
                                          infer_feature_shape=True)
    validator = ExampleValidator(statistics=statistics.outputs["statistics"],
                                                schema=schema.outputs["schema"])
    gate = AnomaliesGate(anomalies=validator.outputs["anomalies"])
    # Transform computes the label vocabulary and writes the transform graph, nothing
    # more: materialised, it wrote every example again (all the image bytes, gzipped) on
    # every run - a second copy of the data per run, and 5 of the demo's first 51 s.
    # EmbeddingGen and the Trainer read ExampleGen's examples with its vocabulary.
    transform = Transform(
        examples=examples, schema=schema.outputs["schema"],
        preprocessing_fn=TRANSFORM_FN, disable_statistics=True, materialize=False,
        # tf.Transform's TF1 graph mode: nothing reads the transform graph but its label
        # vocabulary (contract.class_names), and TF2's tracing and SavedModel export cost
        # 0.7 s of every run (4.1 -> 3.3-3.4 s on the demo's two spans).
        force_tf_compat_v1=True)
    transform.add_upstream_node(gate)

    fingerprints = backbone_fingerprints or {}
    # "decoding": the inputs' preparation (backbones/image_input.py) is EmbeddingGen's code,
    # which TFX does not fingerprint: without it here, an upgraded decoding reused the
    # vectors TFX had cached for the old one (its own cache keys them on it already).
    decoding = modalities.of(cfg.train.modality).version()
    views = [{"backbone": v.backbone, "image_size": v.image_size,
              "fingerprint": fingerprints.get(v.backbone, ""), "decoding": decoding}
             for v in cfg.train.views()]
    adapter = None
    if cfg.train.adapt_batchnorm:
        adapter = BatchNormAdapter(examples=examples,
                                   views=views, unlabeled=ingest.absolute(cfg.data.unlabeled)
                                   if cfg.data.unlabeled else "")
        adapter.add_upstream_node(transform)  # only data that passed validation
    adapted = adapter.outputs["adapted_backbones"] if adapter else None
    embeddings = EmbeddingGen(
        examples=examples, transform_graph=transform.outputs["transform_graph"], views=views,
        batch_size=2 * cfg.train.batch_size, adapted_backbones=adapted,
        cache_dir=os.path.join(root, contract.EMBEDDING_CACHE_DIR), modality=cfg.train.modality)
    trainer = Trainer(
        run_fn=RUN_FN,
        examples=examples,
        embeddings=embeddings.outputs["embeddings"], adapted_backbones=adapted,
        transform_graph=transform.outputs["transform_graph"],
        schema=schema.outputs["schema"],
        # The trainer's options whole, plus what identifies the code and the backbone's
        # content: TFX fingerprints neither a run_fn given by import path nor the weights
        # behind a backbone name, so without them changed code or a re-imported backbone
        # would be served from cache.
        custom_config={OPTIONS_KEY: cfg.train.to_json(),
                       "backbone_fingerprint": ",".join(v["fingerprint"] for v in views),
                       "trainer_code": source_fingerprint()})

    champion = Resolver(
        strategy_class=LatestBlessedModelStrategy,
        model=Channel(type=standard_artifacts.Model),
        model_blessing=Channel(type=standard_artifacts.ModelBlessing),
    ).with_id("champion_resolver")

    floor, floor_reason = effective_floor(cfg, majority_accuracy)
    evaluator = Evaluator(
        examples=examples,
        model=trainer.outputs["model"],
        baseline_model=champion.outputs["model"],
        eval_config=eval_config(cfg, floor),
        example_splits=[contract.SPLIT_EVAL],
        # The models' heads on the held-out vectors, when both have one over these vectors.
        embeddings=embeddings.outputs["embeddings"])
    report = BlessingReport(
        evaluation=evaluator.outputs["evaluation"], blessing=evaluator.outputs["blessing"],
        thresholds_json=json.dumps({
            "min_accuracy": floor, "floor_reason": floor_reason,
            "majority_accuracy": majority_accuracy,
            "max_regression": cfg.evaluate.max_regression,
            "per_class_max_regression": cfg.evaluate.per_class_max_regression}))
    pusher = VersionedPusher(
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        blessing_report=report.outputs["report"],
        serving_dir=ingest.absolute(cfg.push.serving_dir), model_name=cfg.model_name,
        keep_last=cfg.push.keep_last,
        provenance_json=json.dumps({"backbone": cfg.train.backbone,
                                    "data": source.source(cfg.data),
                                    "pipeline_name": cfg.pipeline_name}))

    run_report = RunReport(
        examples=examples, statistics=statistics.outputs["statistics"],
        model=trainer.outputs["model"], model_run=trainer.outputs["model_run"],
        blessing_report=report.outputs["report"], pushed_model=pusher.outputs["pushed_model"],
        embeddings=embeddings.outputs["embeddings"], baseline_model=champion.outputs["model"],
        pipeline_name=cfg.pipeline_name, model_name=cfg.model_name)

    return Pipeline(
        pipeline_name=cfg.pipeline_name,
        pipeline_root=os.path.join(root, "artifacts"),
        components=[example_gen, statistics, schema, validator, gate]
        + ([window] if window is not None else [])
        + [transform] + ([adapter] if adapter else []) + [embeddings, trainer, champion, evaluator, report, pusher, run_report],
        enable_cache=True,
        metadata_connection_config=(
            metadata.sqlite_metadata_connection_config(cfg.metadata_path)
            if local else None),
        beam_pipeline_args=beam_args(cfg, local))
