"""Publishing a file by rename on any filesystem TensorFlow reads (local, gs://), for
artifacts and the embedding cache. contract.atomic_write is the local-only form (it
keeps file modes, for servers) and contract imports no TensorFlow, so serving can use
it; this one goes through tf.io.gfile."""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

from graft import contract


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
