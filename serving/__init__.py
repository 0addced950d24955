"""graft.serving: a TF-Serving-compatible model server, client and config generators."""
