"""Data that grows over time: span folders under the data root.

A data root may hold one folder per span, each laid out ``<class>/<image>``:
``span-1/``, ``span-2/``, ... or dated ``2026-11-29/``. These are TFX's own span
patterns (``span-{SPAN}/*``, ``{YYYY}-{MM}-{DD}/*``): TFX's ExampleGen driver picks
the latest span, records it on the Examples artifact, and its resolvers pick the
window of spans a run trains on. This module only recognises the layout and names
the span folders, for the pre-flight check and the nothing-new check, which run
before TFX does.
"""
from __future__ import annotations

import datetime
import os
import re
from typing import List, Optional, Tuple

from graft.components.image_folder_example_gen.scan import DataError

SPAN_PATTERN = "span-{SPAN}/*"
DATE_PATTERN = "{YYYY}-{MM}-{DD}/*"
_SPAN_RE = re.compile(r"^span-(\d+)$")
_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_EPOCH = datetime.date(1970, 1, 1)


class SpanError(DataError):
    """Span folders mixed with other folders, or a date that is not one."""


def _span_of(name: str) -> Tuple[Optional[str], Optional[int]]:
    m = _SPAN_RE.match(name)
    if m:
        return SPAN_PATTERN, int(m.group(1))
    m = _DATE_RE.match(name)
    if m:
        try:
            day = datetime.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            raise SpanError(f"{name}: not a valid date (span folders are YYYY-MM-DD)")
        # TFX's date_to_span_number: days since the Unix epoch.
        return DATE_PATTERN, (day - _EPOCH).days
    return None, None


def layout(root: str) -> Optional[str]:
    """The TFX input pattern of a span layout, or None for a plain DIR/<class>/ layout."""
    if "://" in root or not os.path.isdir(root):
        return None
    names = sorted(d for d in os.listdir(root)
                   if not d.startswith(".") and os.path.isdir(os.path.join(root, d)))
    kinds = {_span_of(n)[0] for n in names}
    if kinds == {None} or not names:
        return None
    if len(kinds) > 1:
        mixed = [n for n in names if _span_of(n)[0] is None] or names
        raise SpanError(f"{root} mixes span folders with other folders ({', '.join(mixed[:3])}): "
                        f"use only span-N/ folders, only YYYY-MM-DD/ folders, or only class "
                        f"folders")
    return kinds.pop()


def folders(root: str) -> List[Tuple[int, str]]:
    """[(span number, folder name)], oldest first."""
    out = []
    for d in os.listdir(root):
        if d.startswith(".") or not os.path.isdir(os.path.join(root, d)):
            continue
        _, span = _span_of(d)
        if span is not None:
            out.append((span, d))
    return sorted(out)


def window(root: str, num_spans: int) -> List[Tuple[int, str]]:
    """The latest ``num_spans`` spans (0: all), oldest first."""
    found = folders(root)
    return found if num_spans <= 0 else found[-num_spans:]
