"""Beam executor: examples -> (cache lookup | frozen backbone) -> embeddings, per split.

Each file of examples is read and sorted by the first hex digit of each example's
content hash into 16 buckets; each bucket loads only its own part of the cache, queues
what is missing for full batches shared across buckets (one model per worker process,
shared across bundles, run on its own thread), writes the new vectors as one cache
shard and a file of records per split. So memory holds a few sixteenths of the cache at
a time (MAX_WAITING), not all of it, and an image that appears twice is embedded once.
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import hashlib
import json
import os
import threading
import time
from typing import Any, Dict, Iterable, List

import apache_beam as beam
from apache_beam.utils import shared
import numpy as np
import tensorflow as tf
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact, artifact_utils
from tfx.utils import io_utils

from graft import contract
from graft import files
from graft.components import beam_crc, signature_session
from graft.components.embedding_gen import cache

beam_crc.use_fast_crc32c()  # every vector is written as a record, on every run

NAMESPACE = "graft.embedding_gen"
# Buckets that may wait for a shared batch; beyond it the queue is embedded as it is (a
# short, padded batch). Bounds memory at a few sixteenths of the cache, not all of it.
MAX_WAITING = 3
OUTPUT_FILE_PREFIX = "data_tfrecord"
OUTPUT_FILE_SUFFIX = ".tfrecord"


def split_dir(uri: str, split: str) -> str:
    """TFX's layout for a split inside an artifact (artifact_utils.get_split_uri needs the
    typed split_names property, which Embeddings carries as a custom property)."""
    return os.path.join(uri, f"Split-{split}")


class ImageDecodeError(ValueError):
    """An example's image bytes cannot be decoded; the message names the example."""


def _parse(record: bytes, split: str, label_ids: Dict[bytes, int],
           feature: str = contract.FEATURE_IMAGE, id_feature: str = contract.FEATURE_ID):
    """(split, id, label id, sha256 of the raw input, raw input): image bytes or text.
    The label id is the label's index in Transform's vocabulary (``label_ids``)."""
    f = tf.train.Example.FromString(record).features.feature
    raw = f[feature].bytes_list.value[0]
    example_id = f[id_feature].bytes_list.value[0]
    label = f[contract.FEATURE_LABEL].bytes_list.value[0]
    if label not in label_ids:  # the vocabulary was computed over these same examples
        raise ValueError(f"example {example_id.decode(errors='replace')}: label "
                         f"{label.decode(errors='replace')!r} is not in Transform's label "
                         "vocabulary; were the examples and the transform graph from one run?")
    return (split, example_id, label_ids[label], hashlib.sha256(raw).hexdigest().encode(), raw)


class _ReadByBucket(beam.DoFn):
    """One file of examples -> (bucket, [parsed examples]) chunks: the examples parsed and
    sorted into the cache's 16 buckets here, not one Beam element each. Why: Beam's
    per-element cost (its read, a parse and a key per element, a GroupByKey of every
    element) is on the path of every run before any work starts. A chunk goes out at
    CHUNK_BYTES, so memory holds at most 16 of them whatever the file's size. A file is
    one unit of work (ExampleGen writes many for big splits)."""

    CHUNK_BYTES = 4 << 20

    def __init__(self, label_ids: Dict[bytes, int], feature: str, id_feature: str):
        self.label_ids, self.feature, self.id_feature = label_ids, feature, id_feature

    def process(self, element) -> Iterable:
        split, path = element
        options = tf.io.TFRecordOptions(contract.tfrecord_compression([path]))
        chunks: Dict[str, list] = collections.defaultdict(list)
        sizes: Dict[str, int] = collections.defaultdict(int)
        for record in tf.compat.v1.io.tf_record_iterator(path, options):
            item = _parse(record, split, self.label_ids, self.feature, self.id_feature)
            bucket = item[3][:1].decode()
            chunks[bucket].append(item)
            sizes[bucket] += len(record)
            if sizes[bucket] >= self.CHUNK_BYTES:
                yield bucket, chunks.pop(bucket)
                sizes[bucket] = 0
        yield from chunks.items()


class _OutputRecords:
    """Serialises the output records of one set of views (their vector lengths fixed) by
    refilling one tf.train.Example: building a new Example from Feature objects for each
    record was most of the interpreter's time in a run that reuses most vectors."""

    def __init__(self, view_dims: List[int], label_names: List[bytes]):
        self.example = tf.train.Example()
        f = self.example.features.feature
        self.id = f[contract.FEATURE_ID].bytes_list.value
        self.label = f[contract.FEATURE_LABEL_ID].int64_list.value
        # The label's name too: a model trained in an earlier run, with its own class
        # list, maps the name, not this run's index (the Evaluator scores the champion
        # on these records).
        self.label_names = label_names
        self.label_name = f[contract.FEATURE_LABEL].bytes_list.value
        self.hash = f[contract.FEATURE_CONTENT_HASH].bytes_list.value
        # Raw little-endian float32 bytes, not a FloatList: protobuf builds a 2 704-float
        # list in about 0.25 ms, seconds per run for the reused vectors alone.
        self.vector = f[contract.FEATURE_EMBEDDING].bytes_list.value
        # Where each view's part of the vector ends (several backbones or input sizes).
        f[contract.FEATURE_VIEW_DIMS].int64_list.value.extend(view_dims)
        for value, empty in ((self.id, b""), (self.label, 0), (self.label_name, b""),
                             (self.hash, b""), (self.vector, b"")):
            value.append(empty)

    def __call__(self, image_id: bytes, label_id: int, content_hash: bytes,
                 vector: np.ndarray) -> bytes:
        self.id[0], self.label[0], self.hash[0] = image_id, label_id, content_hash
        self.label_name[0] = self.label_names[label_id]
        self.vector[0] = np.ascontiguousarray(vector, dtype="<f4").tobytes()
        return self.example.SerializeToString()


class _ServingSignature:
    """A graft backbone's ``serving_default`` (one input -> {"feature_vector"}: its
    __call__ with training=False, as backbones/hub_module.py and text_module.py save it),
    in a TF1 session. Why: hub.load took 1.4 s for EfficientNet-Lite0, the session 0.8 s
    (signature_session.py), for the same function at the same speed per batch. Raises
    ValueError for any other module: what another's signature computes is not known."""

    def __init__(self, path: str):
        self.sig = signature_session.SignatureSession(path, optimize_graph=False)
        if len(self.sig.inputs) != 1 or list(self.sig.outputs) != ["feature_vector"]:
            self.sig.close()
            raise ValueError(f"{path}: not a graft backbone's serving_default")
        self.feed, self.fetch = next(iter(self.sig.inputs)), "feature_vector"

    def __call__(self, x) -> np.ndarray:
        return self.sig.run([self.fetch], {self.feed: x})[0]


class Embedder:
    """The frozen backbone: [N] raw inputs (encoded images, or texts) -> [N, dim] vectors.

    Decoding is one traced function; the backbone runs as its serving signature
    (_ServingSignature), or else as the restored module called as it is (its functions
    were traced when it was saved). Wrapping it in a new tf.function, or in
    hub.KerasLayer, re-traces the whole network: measured here, 3.7 s more per process
    for EfficientNet-Lite0 - most of this step's fixed cost. Modules that are not callable
    (TF1 Hub format) go through hub.KerasLayer."""

    def __init__(self, backbone_path: str, image_size: int, modality: str = "image"):
        import tensorflow_hub as hub

        from graft.backbones import modality as modalities
        if modality == "text":
            import tensorflow_text  # noqa: F401  (the text backbone's tokeniser ops)
        m = self.modality = modalities.of(modality)
        # autograph=False: decoding has no Python control flow on tensors (tf.case).
        self.decode = tf.function(lambda b: m.prepare(b, image_size),
                                  input_signature=[tf.TensorSpec([None], tf.string)],
                                  autograph=False)
        self.signature = None
        try:
            self.signature = _ServingSignature(backbone_path)
            return
        except (ValueError, RuntimeError, OSError, tf.errors.OpError):
            pass  # a module saved without one: restored and called
        module = hub.load(backbone_path)
        if callable(module):
            self.module, self.takes_training = module, True
        else:
            self.module, self.takes_training = hub.KerasLayer(backbone_path), True

    def warm_up(self, batch_size: int) -> "Embedder":
        """One call at the batch shape every call will have: the decoding's tracing and the
        backbone's one-off set-up for a new input shape (oneDNN primitives: 0.5 s for
        Lite0) are paid here."""
        try:
            self([self.modality.sample_input()] * batch_size)
        except (ValueError, TypeError, tf.errors.OpError):
            pass  # only a head start: the real batches will say what is wrong
        return self

    def __call__(self, images: List[bytes]) -> np.ndarray:
        x = self.decode(tf.constant(images, dtype=tf.string))
        if self.signature is not None:
            return self.signature(x.numpy())
        if self.takes_training:
            try:
                return self.module(x, training=False).numpy()
            except (TypeError, ValueError):
                self.takes_training = False  # a module whose __call__ has no training arg
        return self.module(x).numpy()


# Backbones loaded (and warmed up) on a thread while Beam reads and groups the examples,
# for DoFns in this process: {(path, size, modality): (Future of an Embedder, Event set
# once a DoFn waits for it)}.
_PRELOADED: Dict[tuple, tuple] = {}


def _embedder(path: str, size: int, modality: str) -> "Embedder":
    """The preloaded backbone if this process has one, else a new one."""
    future, wanted = _PRELOADED.pop((path, size, modality), (None, None))
    if future is None:
        return Embedder(path, size, modality)
    wanted.set()
    return future.result()


def _load_and_warm_up(path: str, size: int, modality: str, batch_size: int,
                      wanted: threading.Event) -> "Embedder":
    embedder = Embedder(path, size, modality)
    # Warming up computes a whole batch of blank inputs: worth it only while Beam still
    # reads. Once real work waits (a run adding few images to many), its first batch
    # pays the same one-off set-up and computes something useful.
    if not wanted.is_set():
        embedder.warm_up(batch_size)
    return embedder


def _preload(specs: List["ViewSpec"], modality: str, batch_size: int, beam_args: List[str]
             ) -> List[tuple]:
    """Starts loading each view's backbone on a thread, when Beam's workers run in this
    process (the direct runner's default in_memory mode): the load and the first call
    (0.8 + 0.5 s for Lite0) then overlap Beam's read and group of every example, instead
    of following them. Its keys, to forget whatever no worker took."""
    from apache_beam.options.pipeline_options import PipelineOptions
    opts = PipelineOptions(flags=list(beam_args)).get_all_options()
    if (opts.get("runner") not in (None, "DirectRunner", "direct")
            or opts.get("direct_running_mode") not in (None, "in_memory")):
        return []
    keys = []
    for v in specs:
        key = (v.backbone_path, v.image_size, modality)
        if key in _PRELOADED:
            continue
        wanted = threading.Event()
        _PRELOADED[key] = (_POOL.submit(_load_and_warm_up, v.backbone_path, v.image_size,
                                        modality, batch_size, wanted), wanted)
        keys.append(key)
    return keys


_POOL = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="graft-preload")


class _Progress:
    """A line now and then while a long step runs (a first run over 60 000 images embeds
    for four minutes): buckets done in this worker, images written, new ones per second.
    Silent for steps shorter than EVERY_SECONDS."""

    EVERY_SECONDS = 15.0

    def __init__(self):
        self.start = self.last = time.time()
        self.buckets = self.images = self.new = 0

    def bucket_done(self, images: int, new: int) -> None:
        self.buckets, self.images, self.new = (self.buckets + 1, self.images + images,
                                               self.new + new)
        now = time.time()
        if now - self.last >= self.EVERY_SECONDS:
            self.last = now
            print(f"  [embed] {self.buckets} of {len(cache.BUCKETS)} buckets done in this "
                  f"worker: {self.images} images written, {self.new} embedded "
                  f"({self.new / (now - self.start):.0f} images/s), "
                  f"{self.images - self.new} from the cache", flush=True)


@dataclasses.dataclass
class ViewSpec:
    """One view as the workers see it: its cache key, where its module is, its size."""
    key: str
    backbone_path: str
    image_size: int
    handle: shared.Shared = dataclasses.field(default_factory=shared.Shared)


@dataclasses.dataclass
class _Bucket:
    """One bucket's examples while their missing vectors are computed - in batches that
    may be shared with the next bucket's."""
    name: str
    items: list                          # (split, id, label id, hash, raw)
    vectors: List[Dict[bytes, np.ndarray]] = dataclasses.field(default_factory=list)
    new: List[Dict[bytes, np.ndarray]] = dataclasses.field(default_factory=list)
    missed: set = dataclasses.field(default_factory=set)   # hashes computed (any view)
    waiting: int = 0                      # vectors not computed yet


class _EmbedBucket(beam.DoFn):
    """Per bucket: the cached vectors, the missing ones computed, a new cache shard, a
    record per example. Missing images are queued across buckets and embedded in full
    batches: 1 500 new images spread over 16 buckets were 32 batches of 64 (2 048
    images' work), and a shorter last batch per bucket costs a new input shape (about
    0.25 s of one-off set-up each). A bucket's records go out once its last vector is
    computed; at most MAX_WAITING buckets wait for theirs (with their part of the cache).

    The backbone runs on its own thread, one batch after another, while this thread reads
    the next buckets' cached vectors and writes the finished buckets' records: TensorFlow
    releases the interpreter lock while it computes, so that work hides behind the
    backbone's instead of following it."""

    def __init__(self, cache_root: str, views: List[ViewSpec], batch_size: int,
                 out_uri: str, modality: str, label_names: List[bytes]):
        self.cache_root, self.views, self.modality = cache_root, views, modality
        self.label_names = list(label_names)
        self.batch_size, self.out_uri = batch_size, out_uri
        self.embedded = beam.metrics.Metrics.counter(NAMESPACE, "embedded")
        self.reused = beam.metrics.Metrics.counter(NAMESPACE, "reused")
        self.corrupt = beam.metrics.Metrics.counter(NAMESPACE, "corrupt_shards")
        self.model_ms = beam.metrics.Metrics.counter(NAMESPACE, "model_ms")

    def setup(self):
        self._loaded: Dict[int, Embedder] = {}
        self._progress = _Progress()
        self._backbone_thread = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="graft-embed")

    def teardown(self):
        self._backbone_thread.shutdown(wait=True)

    def start_bundle(self):
        # Per view: (bucket, hash, (image id, raw)) waiting for a batch.
        self._queue: List[collections.deque] = [collections.deque() for _ in self.views]
        # Batches handed to the backbone's thread, oldest first: (view, chunk, future).
        self._running: collections.deque = collections.deque()
        self._open: List[_Bucket] = []

    def _model(self, i: int) -> "Embedder":
        # Loaded on the first miss (a run with nothing new never pays for it), once per
        # worker process whatever the number of DoFn instances.
        if i not in self._loaded:
            v = self.views[i]
            self._loaded[i] = v.handle.acquire(lambda: _embedder(
                v.backbone_path, v.image_size, self.modality))
        return self._loaded[i]

    def _embed(self, i: int, items: List[tuple]):
        """(vectors, the backbone's seconds). Runs on the backbone's thread: Beam's
        counters belong to the bundle's thread, so the caller counts the time."""
        model = self._model(i)  # loaded before the clock starts: model_ms is the backbone's
        t = time.perf_counter()
        # Every call gets the same batch size (a short batch is padded with its first
        # image): each new input shape costs the backbone about 0.25 s of one-off set-up
        # (oneDNN primitives), more than computing the padding.
        batch = [image for _, image in items]
        batch += batch[:1] * (self.batch_size - len(batch))
        try:
            vectors = list(model(batch)[:len(items)])
        except tf.errors.InvalidArgumentError:
            vectors = [self._one(i, item) for item in items]  # find the bad one, name it
        return vectors, time.perf_counter() - t

    def _one(self, i: int, item) -> np.ndarray:
        image_id, image = item
        try:
            return self._model(i)([image])[0]
        except tf.errors.InvalidArgumentError as e:
            what = ("image cannot be decoded" if self.modality == "image"
                    else f"{self.modality} cannot be read by the backbone")
            raise ImageDecodeError(f"example {image_id.decode(errors='replace')}: its {what} "
                                   f"({e.message.splitlines()[0]}); fix or remove it") from e

    def _store(self, i: int):
        return cache.Store(self.cache_root, self.views[i].key) if self.cache_root else None

    def process(self, element) -> Iterable:
        name, chunks = element
        b = _Bucket(name, [item for chunk in chunks for item in chunk])
        for i in range(len(self.views)):
            store = self._store(i)
            known, corrupt = store.load(name) if store else ({}, 0)
            self.corrupt.inc(corrupt)
            # By hash: an image that appears twice is embedded once.
            missing = {h: (image_id, image) for _, image_id, _, h, image in b.items
                       if h not in known}
            b.vectors.append(known)
            b.new.append({})
            self._queue[i].extend((b, h, item) for h, item in missing.items())
            b.waiting += len(missing)
            b.missed |= set(missing)
        self._open.append(b)
        self._drain(final=False)

    def finish_bundle(self):
        self._drain(final=True)

    def _submit(self, i: int, n: int) -> None:
        q = self._queue[i]
        chunk = [q.popleft() for _ in range(min(n, len(q)))]
        self._running.append((i, chunk, self._backbone_thread.submit(
            self._embed, i, [c[2] for c in chunk])))

    def _collect(self, block: bool) -> None:
        """Hands the finished batches' vectors to their buckets, oldest first; with
        ``block``, waits for the oldest running batch."""
        while self._running and (block or self._running[0][2].done()):
            i, chunk, future = self._running.popleft()
            vectors, seconds = future.result()  # re-raises a bad image's error here
            self.model_ms.inc(int(seconds * 1000))
            for (b, h, _), vector in zip(chunk, vectors):
                b.new[i][h] = vector
                b.waiting -= 1
            block = False

    def _drain(self, final: bool) -> None:
        """Hands every full batch queued to the backbone's thread (and the rest too at the
        bundle's end, or when more than MAX_WAITING buckets wait: few misses per bucket
        must not keep the whole cache in memory), then emits the buckets that have all
        their vectors - waiting for them only at the bundle's end or past MAX_WAITING."""
        for i, q in enumerate(self._queue):
            while len(q) >= self.batch_size:
                self._submit(i, self.batch_size)
        while True:
            self._collect(block=False)
            self._emit_done()
            if not (self._open and (final or len(self._open) > MAX_WAITING)):
                return
            if not self._running:  # the oldest bucket waits for a short batch: send it
                for i, q in enumerate(self._queue):
                    while q:
                        self._submit(i, self.batch_size)
            if not self._running:  # a bucket waiting for nothing: never loop on it
                raise RuntimeError(f"EmbeddingGen: bucket {self._open[0].name} waits for "
                                   f"{self._open[0].waiting} vectors that were never queued")
            self._collect(block=True)

    def _emit_done(self) -> None:
        done = [b for b in self._open if not b.waiting]
        self._open = [b for b in self._open if b.waiting]
        for b in done:
            self._emit(b)

    def _emit(self, b: _Bucket) -> None:
        for i in range(len(self.views)):
            b.vectors[i].update(b.new[i])
            store = self._store(i)
            if store and b.new[i]:
                store.write(b.name, b.new[i])
                store.compact(b.name, b.vectors[i])  # the bucket's every vector, no copy
        new = sum(1 for *_, h, _ in b.items if h in b.missed)
        self.embedded.inc(new)
        self.reused.inc(len(b.items) - new)
        by_split: Dict[str, list] = collections.defaultdict(list)
        for item in b.items:
            by_split[item[0]].append(item)
        if b.items:
            records = _OutputRecords([len(v[b.items[0][3]]) for v in b.vectors],
                                     self.label_names)
        for split, items in by_split.items():
            # One file per bucket and split, published whole; a retried bundle writes the
            # same file again.
            final = os.path.join(split_dir(self.out_uri, split),
                                 f"{OUTPUT_FILE_PREFIX}-b{b.name}{OUTPUT_FILE_SUFFIX}")
            with files.published(final) as tmp, tf.io.TFRecordWriter(tmp) as w:
                for _, image_id, label_id, h, _ in items:
                    parts = [v[h] for v in b.vectors]
                    w.write(records(image_id, label_id, h,
                                    parts[0] if len(parts) == 1 else np.concatenate(parts)))
        self._progress.bucket_done(len(b.items), new)


def resolve_views(views: List[Dict], adapted=None) -> List[Dict]:
    """The views' modules and fingerprints: their handles resolved (a Kubeflow container
    imports a registered backbone on first use), or their BatchNorm-adapted copies."""
    from graft import backbones
    from graft.components.embedding_gen.component import adapted_views
    recorded = adapted_views(adapted) if adapted is not None else None
    out = []
    for i, v in enumerate(views):
        v = dict(v)
        if recorded is not None:
            a = recorded[i]
            if a["backbone"] != v["backbone"] or int(a["image_size"]) != int(v["image_size"]):
                raise ValueError(f"adapted backbone {i} is {a['backbone']}@{a['image_size']}, "
                                 f"expected {v['backbone']}@{v['image_size']}")
            v["path"], v["fingerprint"] = a["path"], a["fingerprint"]
        else:
            v["path"] = backbones.resolve(v["backbone"])
            v["fingerprint"] = v.get("fingerprint") or backbones.fingerprint(v["backbone"])
        out.append(v)
    return out


class Executor(base_beam_executor.BaseBeamExecutor):

    def Do(self, input_dict: Dict[str, List[artifact.Artifact]],
           output_dict: Dict[str, List[artifact.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        from graft.backbones import modality as modalities

        # One Examples artifact, or several: a window of spans, embedded as one set.
        examples = input_dict["examples"]
        out = artifact_utils.get_single_instance(output_dict["embeddings"])
        splits = artifact_utils.decode_split_names(examples[0].split_names)
        out.set_string_custom_property(contract.PROP_SPLIT_NAMES,
                                       artifact_utils.encode_split_names(splits))
        m = modalities.of(exec_properties.get("modality") or "image")
        adapted = input_dict.get("adapted_backbones") or []
        views = resolve_views(json.loads(exec_properties["views"]),
                              adapted[0] if adapted else None)
        cache_root = exec_properties.get("cache_dir") or ""
        specs = []
        for v in views:
            # Texts have no size: the key and the vectors do not depend on it.
            size = int(v["image_size"]) if m.name == "image" else 0
            v["image_size"] = size
            v["key"] = cache.cache_key(v["fingerprint"], size, m.version())
            if cache_root:
                cache.Store(cache_root, v["key"]).describe({
                    "backbone": v["backbone"], "backbone_fingerprint": v["fingerprint"],
                    "image_size": size, "modality": m.name,
                    "preprocessing_version": m.version()})
            specs.append(ViewSpec(v["key"], v["path"], size))

        labels = {name.encode(): i for i, name in enumerate(contract.class_names(
            artifact_utils.get_single_instance(input_dict["transform_graph"]).uri))}
        start = time.time()
        preloaded = _preload(specs, m.name, int(exec_properties["batch_size"]),
                             self._beam_pipeline_args)
        files = [(s, f) for s in splits for uri in artifact_utils.get_split_uris(examples, s)
                 for f in sorted(tf.io.gfile.glob(io_utils.all_files_pattern(uri)))]
        for s in splits:
            tf.io.gfile.makedirs(split_dir(out.uri, s))
        pipeline = self._make_beam_pipeline()
        # The records are written by the Embed step itself, a file per bucket and split:
        # Beam's WriteToTFRecord spends interpreter time per element, taken from the
        # backbone's thread. Uncompressed: float vectors gzip poorly and slowly, and the
        # reused vectors are written again on every run.
        _ = (pipeline
             | "Files" >> beam.Create(files)
             | "ReadByBucket" >> beam.ParDo(_ReadByBucket(labels, m.feature, m.id_feature))
             | "Group" >> beam.GroupByKey()
             | "Embed" >> beam.ParDo(_EmbedBucket(cache_root, specs,
                                                  int(exec_properties["batch_size"]),
                                                  out.uri, m.name, list(labels))))
        try:
            result = pipeline.run()
            result.wait_until_finish()
        finally:
            for key in preloaded:  # nothing was missing: no worker took it
                _PRELOADED.pop(key, None)
        for s in splits:  # a split with no examples still reads as one, empty
            if not tf.io.gfile.glob(os.path.join(split_dir(out.uri, s), "*")):
                tf.io.TFRecordWriter(os.path.join(split_dir(out.uri, s), OUTPUT_FILE_PREFIX
                                                  + OUTPUT_FILE_SUFFIX)).close()
        seconds = time.time() - start

        counts = {}
        for name in ("embedded", "reused", "corrupt_shards", "model_ms"):
            found = result.metrics().query(beam.metrics.MetricsFilter()
                                           .with_namespace(NAMESPACE).with_name(name))
            counts[name] = sum(c.committed or 0 for c in found["counters"])
        out.set_int_custom_property(contract.PROP_EMBEDDED, counts["embedded"])
        out.set_int_custom_property(contract.PROP_REUSED, counts["reused"])
        out.set_string_custom_property(contract.PROP_EMBED_SECONDS, f"{seconds:.2f}")
        out.set_string_custom_property(contract.PROP_EMBED_MODEL_SECONDS,
                                       f"{counts['model_ms'] / 1000:.2f}")
        dims = _dims(out, splits)
        out.set_int_custom_property(contract.PROP_EMBEDDING_DIM, sum(dims))
        for v, d in zip(views, dims or [0] * len(views)):
            v["dim"] = d
        out.set_string_custom_property(contract.PROP_VIEWS, json.dumps(
            [{k: v[k] for k in ("backbone", "image_size", "fingerprint", "key", "dim")}
             for v in views]))
        out.set_string_custom_property(contract.PROP_EMBEDDING_KEY,
                                       ",".join(v["key"] for v in views))
        if counts["corrupt_shards"]:
            out.set_int_custom_property("graft_corrupt_cache_shards", counts["corrupt_shards"])


def _dims(out, splits) -> List[int]:
    """Each view's vector length, from the first record written."""
    for s in splits:
        files = tf.io.gfile.glob(os.path.join(split_dir(out.uri, s), "*"))
        for f in files:
            for rec in tf.data.TFRecordDataset(f, compression_type=contract.tfrecord_compression(
                    [f])).take(1):
                ex = tf.train.Example.FromString(rec.numpy())
                return list(ex.features.feature[contract.FEATURE_VIEW_DIMS].int64_list.value)
    return []
