"""graft.pipeline: configuration, the TFX DAG, runners and the `graft` CLI. No ML code here."""
