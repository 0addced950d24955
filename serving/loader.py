"""Loads one model version (a SavedModel directory) into a callable servable.

A loaded Servable is immutable; in-flight requests hold a Python reference to
it, so unloading (dropping it from the manager's table) never pulls a model
out from under a running request - Python's reference counting is the
ref-counted handle TF Serving implements by hand.
"""
from __future__ import annotations

import os
from typing import Dict, List

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from graft.contract import SERVING_SIGNATURE
from graft.serving.status import Code, ServingError, failed_precondition



class LoadError(Exception):
    pass


class Signature:
    def __init__(self, name: str, fn, sig_def: meta_graph_pb2.SignatureDef):
        self.name = name
        self.fn = fn
        self.sig_def = sig_def
        self.method_name = sig_def.method_name
        _, kwargs = fn.structured_input_signature
        self.inputs: Dict[str, tf.TensorSpec] = dict(kwargs)
        self.outputs: List[str] = sorted(sig_def.outputs.keys())

    def __call__(self, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        missing = [k for k in self.inputs if k not in inputs]
        if missing:
            raise ServingError(Code.INVALID_ARGUMENT, f"Missing named input: {missing[0]}")
        extra = [k for k in inputs if k not in self.inputs]
        if extra:
            raise ServingError(Code.INVALID_ARGUMENT,
                               f"Request inputs do not match required inputs for model; "
                               f"signature does not have named input: {extra[0]}")
        args = {}
        for k, spec in self.inputs.items():
            arr = inputs[k]
            try:
                t = tf.convert_to_tensor(arr, dtype=spec.dtype)
            except (TypeError, ValueError) as e:
                raise ServingError(Code.INVALID_ARGUMENT,
                                   f"Expects arg[{k}] to be {spec.dtype.name}: {e}") from e
            if not spec.shape.is_compatible_with(t.shape):
                raise ServingError(Code.INVALID_ARGUMENT,
                                   f"input '{k}' has shape {t.shape.as_list()}, the signature "
                                   f"expects {spec.shape}")
            args[k] = t
        try:
            out = self.fn(**args)
        except tf.errors.InvalidArgumentError as e:
            raise ServingError(Code.INVALID_ARGUMENT, e.message) from e
        except tf.errors.OpError as e:
            raise ServingError(Code.INTERNAL, e.message) from e
        return {k: v.numpy() for k, v in out.items()}


class Servable:
    """One loaded version: its signatures, ready to call."""

    def __init__(self, name: str, version: int, path: str):
        self.name, self.version, self.path = name, version, path
        pb = os.path.join(path, "saved_model.pb")
        if not os.path.exists(pb):
            raise LoadError(f"SavedModel not found in export directory {path} "
                            f"(no saved_model.pb: half-written or not a SavedModel)")
        try:
            sm = saved_model_pb2.SavedModel()
            with open(pb, "rb") as f:
                sm.ParseFromString(f.read())
            self.signature_defs = dict(sm.meta_graphs[0].signature_def)
            obj = tf.saved_model.load(path)
        except Exception as e:  # corrupt protos, missing variables, unknown ops
            raise LoadError(f"could not load {path}: {e}") from e
        self._obj = obj  # keeps variables alive
        self.signatures: Dict[str, Signature] = {
            k: Signature(k, fn, self.signature_defs[k])
            for k, fn in obj.signatures.items() if k in self.signature_defs}
        if not self.signatures:
            raise LoadError(f"{path} has no signatures to serve")

    def signature(self, name: str) -> Signature:
        name = name or SERVING_SIGNATURE
        sig = self.signatures.get(name)
        if sig is None:
            raise failed_precondition(f'Serving signature key "{name}" not found.')
        return sig
