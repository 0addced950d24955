"""The new model on the held-out examples: the images it gets most confidently wrong,
and the formats and sizes of the images it saw.

The served signature (image bytes in) runs in batches over at most ``max_examples``
held-out examples, streamed from the examples' files; only the ``keep`` worst
mistakes' bytes are held (a bounded heap), so memory does not grow with the data.

When the model has a head export (its backbones are the frozen ones that computed
EmbeddingGen's vectors: trainer/export.py, export_head - the one the Evaluator scores),
the held-out vectors EmbeddingGen already computed are scored with it instead - the
backbone's pass over the held-out images was most of this step (2.9 of 4.5 s on the
demo). It is trusted only if its (true, predicted) counts over the whole held-out split
equal those of the Evaluator's, cell for cell; otherwise the served signature runs as
above.
"""
from __future__ import annotations

import base64
import collections
import heapq
import io
import os
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from graft import contract
from graft.components import signature_session

BATCH = 32
VECTOR_BATCH = 256  # held-out vectors per call of the head export (a few kB each)
THUMBNAIL_PX = 112


def _eval_files(examples) -> List[str]:
    from tfx.types import artifact_utils
    files: List[str] = []
    for a in examples:
        split_dir = artifact_utils.get_split_uri([a], contract.SPLIT_EVAL)
        files += sorted(tf.io.gfile.glob(os.path.join(split_dir, "*")))
    return files


def _thumbnail(data: bytes) -> str:
    """A PNG data URI of at most THUMBNAIL_PX a side ('' if Pillow cannot read it)."""
    from PIL import Image
    try:
        img = Image.open(io.BytesIO(data))
        img.draft("RGB", (THUMBNAIL_PX, THUMBNAIL_PX))  # JPEG: decode at a reduced scale
        img = img.convert("RGB")
        img.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
        out = io.BytesIO()
        img.save(out, format="PNG")
    except Exception:  # noqa: BLE001 - the model read it; a thumbnail is best effort
        return ""
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def _header(data: bytes):
    """(format, width, height) from the image's header, without decoding pixels."""
    from PIL import Image
    try:
        img = Image.open(io.BytesIO(data))
        return img.format or "?", img.width, img.height
    except Exception:  # noqa: BLE001
        return "unreadable", 0, 0


class _ServedSignature:
    """The exported serving signature, run as TF Serving runs it (signature_session.py)."""

    def __init__(self, path: str, feature: str = contract.FEATURE_IMAGE):
        if feature == contract.FEATURE_TEXT:
            import tensorflow_text  # noqa: F401  (the text model's tokeniser ops)
        self.sig = signature_session.SignatureSession(path, contract.SERVING_SIGNATURE)
        self.feature = feature

    def __call__(self, image_bytes):
        return self.sig.run(["label", "score"], {self.feature: image_bytes})

    def close(self):
        self.sig.close()


def _batches(files: List[str], limit: int, feature: str, id_feature: str):
    """(inputs, labels, ids) in batches of BATCH, from the first ``limit`` examples.

    Why not tf.data: its eager iterator, interleaved with the session's calls, doubled
    the time of this loop on 2 cores (measured over the demo's 442 held-out images:
    5.1 s against 2.7 s with this reader), the two runtimes' thread pools contending.
    """
    def first(ex, key):
        f = ex.features.feature.get(key)
        values = f.bytes_list.value if f is not None else []
        return values[0] if values else b""
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    batch: tuple = ([], [], [])
    n = 0
    for path in files:
        for record in tf.compat.v1.io.tf_record_iterator(path, options=options):
            ex = tf.train.Example.FromString(record)
            batch[0].append(first(ex, feature))
            batch[1].append(first(ex, contract.FEATURE_LABEL).decode())
            batch[2].append(first(ex, id_feature).decode())
            n += 1
            if len(batch[0]) == BATCH:
                yield batch
                batch = ([], [], [])
            if n >= limit:
                break
        if n >= limit:
            break
    if batch[0]:
        yield batch


def _vector_predictions(head_dir: str, embeddings, classes: List[str], limit: int,
                        confusion: Optional[List[List[int]]]) -> Optional[Dict[str, tuple]]:
    """{example id: (predicted class, its probability)} for the first ``limit`` held-out
    vectors, scored by the head export's classify signature - or None (the served
    signature runs instead) unless the counts over all of them equal the Evaluator's
    ``confusion``."""
    if (confusion is None or embeddings is None
            or not tf.io.gfile.exists(os.path.join(head_dir, "saved_model.pb"))):
        return None
    k = len(classes)
    if len(confusion) != k:
        return None
    head = signature_session.SignatureSession(head_dir, contract.CLASSIFY_SIGNATURE)
    files = sorted(tf.io.gfile.glob(os.path.join(embeddings.uri, f"Split-{contract.SPLIT_EVAL}", "*")))
    options = tf.io.TFRecordOptions(compression_type=contract.tfrecord_compression(files))
    counts = np.zeros((k, k), np.int64)
    out: Dict[str, tuple] = {}

    def score(records: List[bytes]) -> bool:
        scores, = head.run(["scores"], {"inputs": records})
        if scores.shape[1] != k:
            return False
        for record, p in zip(records, scores):
            f = tf.train.Example.FromString(record).features.feature
            best = int(np.argmax(p))
            truth = int(f[contract.FEATURE_LABEL_ID].int64_list.value[0])
            if 0 <= truth < k:
                counts[truth, best] += 1
            if len(out) < limit:
                out[f[contract.FEATURE_ID].bytes_list.value[0].decode()] = (
                    classes[best], float(p[best]))
        return True
    try:
        batch: List[bytes] = []
        for path in files:
            for record in tf.compat.v1.io.tf_record_iterator(path, options=options):
                batch.append(record)
                if len(batch) == VECTOR_BATCH:
                    if not score(batch):
                        return None
                    batch = []
        if batch and not score(batch):
            return None
    finally:
        head.close()
    if not np.array_equal(counts, np.asarray(confusion, np.int64)):
        print("  [report] the head on EmbeddingGen's vectors disagrees with the Evaluator; "
              "running the exported model instead", flush=True)
        return None
    return out


TEXT_SHOWN = 300  # characters of a misclassified text shown in the report


def examine(serving_dir: str, examples, max_examples: int, keep: int,
            modality: str = "image", head_dir: str = "", embeddings=None,
            classes: Optional[List[str]] = None,
            confusion: Optional[List[List[int]]] = None) -> Dict:
    """The worst mistakes and the inputs' formats over at most ``max_examples`` held-out
    examples. ``head_dir``, ``embeddings``, ``classes`` and ``confusion`` (the
    Evaluator's counts for this model): the vectors' shortcut described above."""
    from graft.backbones import modality as modalities
    m = modalities.of(modality)
    is_text = m.name == "text"
    files = _eval_files(examples)
    if not files or max_examples <= 0:
        return {"examined": 0, "wrong": 0, "worst": [], "formats": {}, "sizes": {}}
    known = _vector_predictions(head_dir, embeddings, list(classes or []), max_examples,
                                confusion) if head_dir else None
    served = _ServedSignature(serving_dir, m.feature) if known is None else None
    heap: list = []  # (score, n, record): the `keep` most confident mistakes
    formats: collections.Counter = collections.Counter()
    widths: List[int] = []
    heights: List[int] = []
    examined = wrong = 0
    # With the vectors' predictions: every held-out example is read, those scored kept.
    for images, labels, ids in _batches(files, max_examples if known is None else 1 << 62,
                                        m.feature, m.id_feature):
        if known is not None:  # the same examples as the vectors scored, in file order
            rows = [i for i, x in enumerate(ids) if x in known]
            images, labels = [images[i] for i in rows], [labels[i] for i in rows]
            ids = [ids[i] for i in rows]
            predicted, scores = [known[x][0] for x in ids], [known[x][1] for x in ids]
        else:
            out_labels, scores = served(images)
            predicted = [x.decode() for x in out_labels]
        for i, data in enumerate(images):
            if is_text:  # lengths, in characters and words
                text = data.decode("utf-8", errors="replace")
                formats["text"] += 1
                widths.append(len(text))
                heights.append(len(text.split()))
            else:
                fmt, w, h = _header(data)
                formats[fmt] += 1
                widths.append(w)
                heights.append(h)
            examined += 1
            if predicted[i] == labels[i]:
                continue
            wrong += 1
            item = (float(scores[i]), examined, {"image_id": ids[i], "true": labels[i],
                                                 "predicted": predicted[i],
                                                 "score": float(scores[i]), "bytes": data})
            if len(heap) < keep:
                heapq.heappush(heap, item)
            elif item[0] > heap[0][0]:
                heapq.heapreplace(heap, item)
    if served is not None:
        served.close()
    worst = []
    for _, _, rec in sorted(heap, key=lambda x: -x[0]):
        raw = rec.pop("bytes")
        if is_text:
            text = raw.decode("utf-8", errors="replace")
            rec["text"] = text[:TEXT_SHOWN] + ("..." if len(text) > TEXT_SHOWN else "")
        else:
            rec["thumbnail"] = _thumbnail(raw)
        worst.append(rec)

    if known is not None and examined != len(known):  # vectors without their examples
        return examine(serving_dir, examples, max_examples, keep, modality)

    def spread(v: List[int]) -> Dict:
        v = sorted(v)
        return {"min": v[0], "median": v[len(v) // 2], "max": v[-1]} if v else {}
    # What scored them: the exported model over the inputs, or its head over the vectors.
    scored_from = "model" if known is None else "embeddings"
    if is_text:
        return {"examined": examined, "wrong": wrong, "worst": worst, "formats": dict(formats),
                "lengths": {"characters": spread(widths), "words": spread(heights)},
                "scored_from": scored_from}
    return {"examined": examined, "wrong": wrong, "worst": worst, "formats": dict(formats),
            "sizes": {"width": spread(widths), "height": spread(heights)},
            "scored_from": scored_from}
