"""Classify images with a backbone's 1000-class ImageNet head (the import check)."""
from __future__ import annotations

import ast
import importlib.util
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np


def class_names() -> Optional[List[str]]:
    """The 1000 ImageNet-1k class names, read from tensorflow-datasets' source.

    Why not import it: the list sits in a dataset module; parsing the literal
    avoids importing all of TFDS for 1000 strings. Returns None if absent."""
    spec = importlib.util.find_spec("tensorflow_datasets")
    if spec is None or not spec.origin:
        return None
    path = os.path.join(os.path.dirname(spec.origin), "datasets", "siscore", "labels.py")
    try:
        with open(path) as f:
            tree = ast.parse(f.read())
    except OSError:
        return None
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], "id", None) == "IMAGENET_LABELS_LIST"):
            names = ast.literal_eval(node.value)
            return names if len(names) == 1000 else None
    return None


def top_k(backbone_path: str, images: Sequence[np.ndarray], k: int = 5
          ) -> List[List[Tuple[int, float]]]:
    """images: uint8 [H, W, 3] arrays of one size -> per image [(class id, prob)], best first."""
    import tensorflow as tf

    module = tf.saved_model.load(backbone_path)
    if "logits" not in module.signatures:
        raise ValueError(f"{backbone_path} has no 'logits' signature (not an ImageNet classifier)")
    batch = tf.convert_to_tensor(np.stack(images).astype(np.float32) / 255.0)
    probs = tf.nn.softmax(module.signatures["logits"](images=batch)["logits"]).numpy()
    out = []
    for p in probs:
        best = np.argsort(-p)[:k]
        out.append([(int(i), float(p[i])) for i in best])
    return out
