"""A SavedModel's signature run as TF Serving runs it: a TF1 session over the MetaGraphDef
with the serving tag, fed and fetched by tensor name.

Why not tf.saved_model.load: it restores every object and function of the SavedModel
(4.8 s for an exported EfficientNet-Lite0 classifier, 1.4 s for the bare backbone)
where the session loads in 1.4 s and 0.8 s, and runs the same graph as fast. Why not
graft serve's loader (serving/loader.py), which does this with a server's limits and
errors: components may not import serving (data flows one way; tests/test_layout.py).
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np
import tensorflow as tf


class SignatureSession:
    """``signature``'s inputs and outputs by their keys, in their own graph and session."""

    def __init__(self, path: str, signature: str = "serving_default",
                 optimize_graph: bool = True):
        """``optimize_graph=False`` turns Grappler off: graft's backbones were optimised
        when saved, so it only adds load time and first-call time, and they compute as
        fast per batch without it (README, "Embed")."""
        self.graph = tf.Graph()
        config = tf.compat.v1.ConfigProto()
        config.graph_options.rewrite_options.disable_meta_optimizer = not optimize_graph
        self.session = tf.compat.v1.Session(graph=self.graph, config=config)
        with self.graph.as_default():
            meta = tf.compat.v1.saved_model.loader.load(
                self.session, [tf.saved_model.SERVING], path)
        sig = meta.signature_def.get(signature)
        if sig is None:
            self.session.close()
            raise ValueError(f"{path} has no signature {signature!r}")
        self.inputs: Dict[str, str] = {k: v.name for k, v in sig.inputs.items()}
        self.outputs: Dict[str, str] = {k: v.name for k, v in sig.outputs.items()}

    def run(self, outputs: List[str], feeds: Dict[str, object]) -> List[np.ndarray]:
        return self.session.run([self.outputs[k] for k in outputs],
                                {self.inputs[k]: v for k, v in feeds.items()})

    def close(self) -> None:
        self.session.close()
