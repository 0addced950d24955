"""Read a legacy (non-zip) PyTorch ``.pth`` state dict into numpy, without torch.

Why hand-written: the pretrained weights we can get offline ship as a legacy
PyTorch pickle, and installing torch (GBs) just to read 19 MB of floats is not
worth it. More importantly, a plain ``pickle.load`` on a downloaded file runs
arbitrary code; this reader uses a restricted Unpickler that resolves only the
handful of names a state dict needs and rejects everything else.

Legacy layout (torch.serialization._legacy_save): pickle(magic number),
pickle(protocol version), pickle(sys info), pickle(state dict, with tensors as
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` and
storages as persistent ids ``('storage', <Type>Storage, key, location, numel,
view)``), pickle(list of storage keys), then for each key an 8-byte
little-endian element count followed by the raw little-endian data.
"""
from __future__ import annotations

import collections
import io
import pickle
import struct
from typing import BinaryIO, Dict

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_PROTOCOL_VERSION = 1001

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class WeightsFileError(ValueError):
    """The weights file is not a readable legacy PyTorch state dict."""


class _StorageType:
    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


class _TensorRef:
    """A tensor whose storage bytes are read after the pickles."""

    def __init__(self, storage_key, offset, size, stride):
        self.storage_key = storage_key
        self.offset = offset
        self.size = tuple(size)
        self.stride = tuple(stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _TensorRef(storage, storage_offset, size, stride)


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only what a tensor state dict needs; anything else is refused."""

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise WeightsFileError(
            f"refusing to load {module}.{name}: not part of a plain tensor state dict")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise WeightsFileError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid[:5]
        if not isinstance(storage_type, _StorageType):
            raise WeightsFileError(f"unknown storage type in {pid!r}")
        self.storages[key] = (storage_type.dtype, int(numel))
        return key


def _load_pickle(f: BinaryIO, storages=None):
    unpickler = _RestrictedUnpickler(f)
    unpickler.storages = storages if storages is not None else {}
    return unpickler.load()


def read_state_dict(f: BinaryIO) -> Dict[str, np.ndarray]:
    """Returns {name: float/int ndarray} from a legacy .pth file object."""
    try:
        if _load_pickle(f) != LEGACY_MAGIC:
            raise WeightsFileError("not a legacy PyTorch file (bad magic number)")
        if _load_pickle(f) != _PROTOCOL_VERSION:
            raise WeightsFileError("unsupported PyTorch legacy protocol version")
        sys_info = _load_pickle(f)
        if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
            raise WeightsFileError("only little-endian weight files are supported")
        storages: dict = {}
        state = _load_pickle(f, storages)
        keys = _load_pickle(f)
    except WeightsFileError:
        raise
    except (pickle.UnpicklingError, EOFError, struct.error, AttributeError, IndexError,
            TypeError, KeyError, ValueError, OverflowError, MemoryError) as e:
        # Garbage bytes make pickle fail in many ways (some opcodes ask for huge
        # allocations): all of them mean the file is not a state dict.
        raise WeightsFileError(f"corrupt or truncated weights file: {e}") from e
    if not isinstance(state, dict) or not isinstance(keys, list):
        raise WeightsFileError("weights file does not hold a state dict")

    buffers = {}
    for key in keys:
        if key not in storages:
            raise WeightsFileError(f"storage {key!r} listed but never referenced")
        dtype, numel = storages[key]
        header = f.read(8)
        if len(header) != 8:
            raise WeightsFileError("truncated weights file (storage header missing)")
        (count,) = struct.unpack("<q", header)
        if count != numel:
            raise WeightsFileError(f"storage {key!r}: {count} elements, expected {numel}")
        nbytes = count * np.dtype(dtype).itemsize
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise WeightsFileError(
                f"truncated weights file: storage {key!r} has {len(raw)} of {nbytes} bytes")
        buffers[key] = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))

    out = {}
    for name, ref in state.items():
        if not isinstance(ref, _TensorRef):
            raise WeightsFileError(f"entry {name!r} is not a tensor")
        if ref.storage_key not in buffers:
            raise WeightsFileError(f"tensor {name!r} refers to missing storage")
        buf = buffers[ref.storage_key]
        itemsize = buf.dtype.itemsize
        needed = ref.offset + (sum((s - 1) * st for s, st in zip(ref.size, ref.stride)) + 1
                               if ref.size else 1)
        if needed > buf.size:
            raise WeightsFileError(f"tensor {name!r} reads past its storage")
        arr = np.lib.stride_tricks.as_strided(
            buf[ref.offset:], shape=ref.size,
            strides=tuple(st * itemsize for st in ref.stride))
        out[name] = np.array(arr, dtype=buf.dtype.newbyteorder("="))
    return out


def load_state_dict(path: str) -> Dict[str, np.ndarray]:
    with open(path, "rb") as f:
        return read_state_dict(io.BufferedReader(f))
