"""models.config: TF Serving's ModelServerConfig text proto, read and written
with the messages from tensorflow-serving-api (so what we write, the real
server reads)."""
from __future__ import annotations

from typing import List

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from graft import files
from graft.contract import VersionPolicy, atomic_write
from graft.serving.manager import ModelConfig
from graft.serving.status import invalid


def parse(text: str) -> List[ModelConfig]:
    msg = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, msg)
    except text_format.ParseError as e:
        # TF Serving's own words (util.cc ParseProtoTextFile), with the line and column.
        raise invalid(f"Error parsing text-format tensorflow.serving.ModelServerConfig: {e}"
                      ) from e
    return from_proto(msg)


def from_proto(msg) -> List[ModelConfig]:
    if msg.WhichOneof("config") != "model_config_list":
        raise invalid("ModelServerConfig must hold a model_config_list "
                      "(custom_model_config is not supported)")
    out = []
    for c in msg.model_config_list.config:
        if not c.name or not c.base_path:
            raise invalid("every model config needs a name and a base_path")
        if c.model_platform and c.model_platform != "tensorflow":
            raise invalid(f"model_platform {c.model_platform!r} is not supported")
        p = c.model_version_policy
        kind = VersionPolicy(p.WhichOneof("policy_choice") or VersionPolicy.LATEST.value)
        out.append(ModelConfig(
            name=c.name, base_path=c.base_path, policy=kind,
            num_versions=(p.latest.num_versions or 1) if kind == VersionPolicy.LATEST else 1,
            versions=tuple(p.specific.versions) if kind == VersionPolicy.SPECIFIC else (),
            labels=dict(c.version_labels)))
    seen = set()
    for c in out:  # TF Serving's server_core.cc words
        if c.name in seen:
            raise invalid(f"Illegal to list model {c.name} multiple times in config list")
        seen.add(c.name)
    return out


def load(path: str) -> List[ModelConfig]:
    return parse(files.read_config_text(path))


def to_text(configs: List[ModelConfig]) -> str:
    msg = model_server_config_pb2.ModelServerConfig()
    for c in configs:
        m = msg.model_config_list.config.add(name=c.name, base_path=c.base_path,
                                             model_platform="tensorflow")
        if c.policy == VersionPolicy.ALL:
            m.model_version_policy.all.SetInParent()
        elif c.policy == VersionPolicy.SPECIFIC:
            m.model_version_policy.specific.versions.extend(c.versions)
        elif c.num_versions != 1:
            m.model_version_policy.latest.num_versions = c.num_versions
        for label, v in sorted(c.labels.items()):
            m.version_labels[label] = v
    return text_format.MessageToString(msg)


def write_atomic(path: str, configs: List[ModelConfig]) -> None:
    """Writes beside the target and renames, so a polling server never reads half a file."""
    text = to_text(configs)
    parse(text)  # never write what we could not read back
    atomic_write(path, text)
