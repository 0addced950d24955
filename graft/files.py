"""Artifact files on any filesystem TensorFlow reads: local paths, gs:// (Kubeflow and
Vertex AI Pipelines hand every component its artifacts as gs:// URIs), and ram:// (the
tests' stand-in for a remote one). Python's open() and os know only the first, so the
trainer and the components read and write artifacts through these.

A file is written beside its final name and renamed there (``published``), so a reader
never sees half of one. contract.atomic_write is the local-only form (it keeps file
modes, for servers), because contract imports no TensorFlow and serving uses it.
"""
from __future__ import annotations

import contextlib
import os
import stat
from typing import BinaryIO, Iterator, Union

from graft import contract


def _gfile():
    import tensorflow as tf  # here, not at import: graft/ is imported by TF-free code too
    return tf.io.gfile


@contextlib.contextmanager
def published(path: str) -> Iterator[str]:
    """Yields a temp path beside ``path`` to write a file at; renames it to ``path`` when
    the block succeeds and removes it when it fails, so readers never see half a file
    under its real name (the temp name starts with contract.TEMP_PREFIX)."""
    import tensorflow as tf
    tmp = os.path.join(os.path.dirname(path), f"{contract.TEMP_PREFIX}{os.path.basename(path)}"
                                              f"-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        yield tmp
        tf.io.gfile.rename(tmp, path, overwrite=True)
    except BaseException:
        with contextlib.suppress(tf.errors.OpError):
            tf.io.gfile.remove(tmp)
        raise


def write(path: str, data: Union[str, bytes]) -> None:
    """Writes a whole file (its directory made if missing), published by rename."""
    gfile = _gfile()
    gfile.makedirs(os.path.dirname(path))
    with published(path) as tmp, gfile.GFile(tmp, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def read_bytes(path: str) -> bytes:
    with _gfile().GFile(path, "rb") as f:
        return f.read()


def read_text(path: str) -> str:
    with _gfile().GFile(path, "r") as f:
        return f.read()


def exists(path: str) -> bool:
    return _gfile().exists(path)


def makedirs(path: str) -> None:
    _gfile().makedirs(path)


def copy_tree(src: str, dst: str) -> None:
    """src's files and folders into dst (made if missing). Local to local: shutil's copy."""
    if "://" not in src and "://" not in dst:
        import shutil
        shutil.copytree(src, dst, dirs_exist_ok=True)
        return
    gfile = _gfile()
    for folder, _, names in gfile.walk(src):
        rel = os.path.relpath(folder, src) if folder.rstrip("/") != src.rstrip("/") else ""
        target = os.path.join(dst, rel) if rel else dst
        gfile.makedirs(target)
        for name in names:
            gfile.copy(os.path.join(folder, name), os.path.join(target, name), overwrite=True)


# A config file larger than this is refused unread: TF Serving's model config for 100 000
# models is about 10 MB, and /dev/zero or a FIFO given as a config must not be read for ever.
CONFIG_MAX_BYTES = 16 << 20


class UnreadableFile(Exception):
    """A file named on the command line or in a config that cannot be used; the message
    names it and says why."""


def read_config_text(path: str, max_bytes: int = CONFIG_MAX_BYTES) -> str:
    """A local config file's text (graft.toml, TF Serving's text protos, a version's JSON):
    a regular file of at most ``max_bytes``, UTF-8. UnreadableFile otherwise."""
    try:
        with open_data_file(path, max_bytes) as f:
            data = f.read(max_bytes + 1)  # a file may grow after its size was checked
    except OSError as e:
        raise UnreadableFile(f"cannot read {path}: {e.strerror or e}") from e
    if len(data) > max_bytes:
        raise UnreadableFile(f"cannot read {path}: larger than {max_bytes >> 20} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UnreadableFile(f"{path} is not UTF-8 text (byte {e.start}): save it as "
                             f"UTF-8") from e


def open_data_file(path: str, max_bytes: int = 0) -> BinaryIO:
    """A local data file (an image, a .txt, a CSV) opened for reading, or OSError if it is
    not a regular file - a FIFO named x.png blocks a plain open() for ever - or is larger
    than ``max_bytes`` (0: no limit). O_NONBLOCK makes opening a FIFO return at once (a
    regular file reads as ever), and the checks look at what was opened, not at a name
    that may have changed since."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError("a folder, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise OSError("not a regular file (a pipe, socket or device)")
        if max_bytes and st.st_size > max_bytes:
            raise OSError(f"larger than {max_bytes >> 20} MiB")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
