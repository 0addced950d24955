"""TF Serving's BatchingParameters, MonitoringConfig and SSLConfig messages, for parsing config files.

tensorflow-serving-api (the PyPI package) ships the API and models.config
protos but not session_bundle_config.proto (BatchingParameters) or
monitoring_config.proto, and no protoc is installable here to compile them.
So these messages are declared below as descriptors, field for field (names,
numbers, types) from TF Serving's sources:
tensorflow_serving/servables/tensorflow/session_bundle_config.proto and
tensorflow_serving/config/monitoring_config.proto, ssl_config.proto. Files are then parsed with
protobuf's own text_format - the same grammar and type checks as the real
server, not a hand parser.
"""
from __future__ import annotations

import logging
from typing import Tuple

from google.protobuf import descriptor_pb2, descriptor_pool, text_format, wrappers_pb2

_F = descriptor_pb2.FieldDescriptorProto
_POOL = descriptor_pool.DescriptorPool()
_POOL.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)


def _file(name: str, messages, deps=()) -> None:
    f = descriptor_pb2.FileDescriptorProto(name=name, package="tensorflow.serving",
                                           syntax="proto3", dependency=list(deps))
    for msg_name, fields in messages:
        m = f.message_type.add(name=msg_name)
        for fname, number, ftype, type_name, repeated in fields:
            m.field.add(name=fname, number=number, type=ftype, type_name=type_name,
                        label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL)
    _POOL.Add(f)


_I64 = (_F.TYPE_MESSAGE, ".google.protobuf.Int64Value")
_file("tensorflow_serving/servables/tensorflow/session_bundle_config.proto", [
    ("BatchingParameters", [
        ("max_batch_size", 1, *_I64, False),
        ("batch_timeout_micros", 2, *_I64, False),
        ("max_enqueued_batches", 3, *_I64, False),
        ("num_batch_threads", 4, *_I64, False),
        ("thread_pool_name", 5, _F.TYPE_MESSAGE, ".google.protobuf.StringValue", False),
        ("allowed_batch_sizes", 6, _F.TYPE_INT64, None, True),
        ("pad_variable_length_inputs", 7, _F.TYPE_BOOL, None, False),
    ])], deps=["google/protobuf/wrappers.proto"])
_file("tensorflow_serving/config/monitoring_config.proto", [
    ("PrometheusConfig", [("enable", 1, _F.TYPE_BOOL, None, False),
                          ("path", 2, _F.TYPE_STRING, None, False)]),
    ("MonitoringConfig", [("prometheus_config", 1, _F.TYPE_MESSAGE,
                           ".tensorflow.serving.PrometheusConfig", False)]),
])
_file("tensorflow_serving/config/ssl_config.proto", [
    ("SSLConfig", [("server_key", 1, _F.TYPE_STRING, None, False),
                   ("server_cert", 2, _F.TYPE_STRING, None, False),
                   ("custom_ca", 3, _F.TYPE_STRING, None, False),
                   ("client_verify", 4, _F.TYPE_BOOL, None, False)]),
])


def _message_class(full_name: str):
    from google.protobuf import message_factory
    desc = _POOL.FindMessageTypeByName(full_name)
    if hasattr(message_factory, "GetMessageClass"):  # protobuf >= 4.21
        return message_factory.GetMessageClass(desc)
    return message_factory.MessageFactory(_POOL).GetPrototype(desc)


BatchingParameters = _message_class("tensorflow.serving.BatchingParameters")
MonitoringConfig = _message_class("tensorflow.serving.MonitoringConfig")
SSLConfig = _message_class("tensorflow.serving.SSLConfig")


class ConfigFileError(ValueError):
    """A config file that does not parse as its message; the message says where."""


def parse(text: str, message_class, what: str) -> Tuple[object, bool]:
    """Text proto -> (message, whether unknown fields were skipped).

    Fields newer than the ones declared here are skipped with a warning rather than
    refused, so a config written for a newer TF Serving still starts the server;
    anything else that does not parse is an error naming the line."""
    msg = message_class()
    try:
        text_format.Parse(text, msg)
        return msg, False
    except text_format.ParseError as e:
        if "has no field named" not in str(e):
            raise ConfigFileError(f"{what}: {e}") from e
    msg = message_class()
    try:
        text_format.Parse(text, msg, allow_unknown_field=True)
    except text_format.ParseError as e:
        raise ConfigFileError(f"{what}: {e}") from e
    logging.getLogger("graft.serving").warning(
        "%s: fields this server does not implement were ignored", what)
    return msg, True
