"""graft.pipeline: the TFX pipeline - configuration, ingest registry, DAG, runners, summary.

Holds the typed configuration (config: graft.toml + flag overrides), the ingest
registry (ingest: input format -> ExampleGen + pre-flight check; tfrecord_scan),
the DAG built from one config (dag), the local runner with its progress lines
(runner), the Kubeflow V2 compiler (kubeflow) and the run summary read back from
ML Metadata (summary). An embedding step is wired into the DAG here (its component
lives in components/); an HTML run report is written next to the summary.

No ML code and no CLI: Kubeflow containers run the pipeline without either.
May import: graft.contract, graft.components, graft.trainer (its options, report and
module paths only; the Trainer runs it in its own process), graft.backbones.
Nothing of serving, datasets or the CLI.
"""
