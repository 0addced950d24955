"""AdaBN executor: sample the target images, re-estimate each view's BatchNorm statistics,
save the adapted modules, record what changed."""
from __future__ import annotations

import hashlib
import heapq
import json
import os
import time
from typing import Any, Dict, Iterator, List, Tuple

import numpy as np
import tensorflow as tf
from tfx.dsl.components.base import base_executor
from tfx.types import artifact, artifact_utils
from tfx.utils import io_utils

from graft import contract


def _train_images(examples: List[artifact.Artifact]) -> Iterator[bytes]:
    spec = {contract.FEATURE_IMAGE: tf.io.FixedLenFeature([], tf.string)}
    for uri in artifact_utils.get_split_uris(examples, contract.SPLIT_TRAIN):
        files = tf.io.gfile.glob(io_utils.all_files_pattern(uri))
        for rec in tf.data.TFRecordDataset(files, compression_type="GZIP"):
            yield tf.io.parse_single_example(rec, spec)[contract.FEATURE_IMAGE].numpy()


def _unlabeled_images(root: str, skipped: List[Tuple[str, str]]) -> Iterator[bytes]:
    """Every readable image file under ``root`` (any layout); the others are listed."""
    from graft.components.image_folder_example_gen import scan
    for dirpath, dirnames, filenames in tf.io.gfile.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if name.startswith(".") or not name.lower().endswith(scan.EXTENSIONS):
                continue
            try:
                data = scan.read_bytes(path)
            except Exception as e:  # noqa: BLE001 - OSError, or tf.errors.OpError on gs://
                skipped.append((path, f"unreadable: {e}"))
                continue
            problem = scan.check_image(data)
            if problem:
                skipped.append((path, problem))
                continue
            yield data


def sample(sources: List[Iterator[bytes]], k: int) -> List[Tuple[bytes, bytes]]:
    """The k distinct images with the smallest sha256, sorted by it: a uniform sample
    that does not depend on the order images arrive in. Holds at most k images."""
    heap: List[Tuple[int, bytes, bytes]] = []   # a max-heap on the hash: (-hash, hash, data)
    held = set()
    for source in sources:
        for data in source:
            h = hashlib.sha256(data).digest()
            key = -int.from_bytes(h, "big")
            if h in held or (len(heap) == k and key <= heap[0][0]):
                continue  # a copy of a held image, or larger than every held one
            if len(heap) == k:
                held.discard(heapq.heapreplace(heap, (key, h, data))[1])
            else:
                heapq.heappush(heap, (key, h, data))
            held.add(h)
    return sorted((h, data) for _, h, data in heap)


def _batches(images: List[bytes], size: int, batch: int) -> Iterator[np.ndarray]:
    from graft.backbones import image_input
    for i in range(0, len(images), batch):
        yield image_input.decode_batch(tf.constant(images[i:i + batch]), size).numpy()


class Executor(base_executor.BaseExecutor):

    def Do(self, input_dict: Dict[str, List[artifact.Artifact]],
           output_dict: Dict[str, List[artifact.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        from graft import backbones
        from graft.backbones import batchnorm_adaptation, image_input

        out = artifact_utils.get_single_instance(output_dict["adapted_backbones"])
        views = json.loads(exec_properties["views"])
        unlabeled = exec_properties.get("unlabeled") or ""
        skipped: List[Tuple[str, str]] = []
        n_unlabeled = [0]

        def counted(it):
            for x in it:
                n_unlabeled[0] += 1
                yield x
        sources = [_train_images(input_dict["examples"])]
        if unlabeled:
            sources.append(counted(_unlabeled_images(unlabeled, skipped)))
        t = time.time()
        chosen = sample(sources, int(exec_properties["max_images"]))
        hashes = hashlib.sha256(b"".join(h for h, _ in chosen)).hexdigest()
        images = [d for _, d in chosen]
        print(f"  [adapt] BatchNorm statistics from {len(images)} images ({n_unlabeled[0]} "
              f"unlabelled read{', %d skipped' % len(skipped) if skipped else ''})", flush=True)
        recorded = []
        for i, v in enumerate(views):
            path = backbones.resolve(v["backbone"])
            if not batchnorm_adaptation.adaptable(path):
                raise backbones.BackboneError(
                    f"adapt_batchnorm: {v['backbone']} is not a graft-imported backbone, "
                    f"whose BatchNorm layers graft can rebuild; use a registered one "
                    f"(graft backbone list) or turn adapt_batchnorm off")
            size = int(v["image_size"])
            sub = f"view-{i}"
            tmp = os.path.join(out.uri, f".tmp-{sub}")
            if tf.io.gfile.exists(tmp):
                tf.io.gfile.rmtree(tmp)
            result = batchnorm_adaptation.adapt(
                path, _batches(images, size, int(exec_properties["batch_size"])), tmp)
            tf.io.gfile.rename(tmp, os.path.join(out.uri, sub))
            base = v.get("fingerprint") or backbones.fingerprint(v["backbone"])
            fingerprint = "adabn-" + hashlib.sha256(json.dumps(
                [base, size, batchnorm_adaptation.VERSION, image_input.preprocessing_version(),
                 hashes]).encode()).hexdigest()[:16]
            recorded.append({
                "backbone": v["backbone"], "image_size": size, "dir": sub,
                "fingerprint": fingerprint, "images": result["images"],
                "unlabeled_images_read": n_unlabeled[0], "unlabeled_skipped": skipped[:20],
                "batchnorm_layers": result["batchnorm_layers"],
                "statistics_changed": len(result["variables_changed"]),
                "other_variables_changed": result["other_variables_changed"]})
            print(f"  [adapt] {v['backbone']}@{size}: {len(result['variables_changed'])} "
                  f"moving statistics of {result['batchnorm_layers']} BatchNorm layers "
                  f"re-estimated; other variables changed: "
                  f"{len(result['other_variables_changed'])}", flush=True)
        out.set_string_custom_property(contract.PROP_ADAPTED, json.dumps(recorded))
        out.set_string_custom_property("graft_adapt_seconds", f"{time.time() - t:.2f}")
