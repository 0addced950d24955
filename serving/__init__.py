"""graft.serving: a TF-Serving-compatible model server, and tools around it.

Mirrors TF Serving's own design: a source that lists integer version directories
(source), a loader (loader) and warmup replay (warmup), pure version policies
(policy), a manager that loads new versions before unloading old ones (manager),
one dataplane object shared by the front ends (dataplane), REST with a route table
(rest, rest_json) and gRPC (grpc_api), batching, metrics, errors in TF Serving's
codes (status), models.config and its atomic rewrites (model_config, version_admin),
configs for the real server (config_gen, tfs_config_protos), and a client. A web
page is one more REST route; a new front end is one more caller of the dataplane.

May import: graft.contract. Nothing of the pipeline, components, trainer, backbones,
datasets or the CLI: a serving host needs only this room and a model directory.
"""
