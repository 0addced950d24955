"""Identical examples, found by a digest of their content, shared by every graft ExampleGen.

A copy under the same class is kept once (the first by id): otherwise copies land on
both sides of the train/eval split and the held-out accuracy counts examples the model
was trained on. An example filed under two or more classes has no single right label:
every copy is left out. Both are listed, with the examples they duplicate."""
from __future__ import annotations

from typing import Dict, List, Tuple

from graft import contract


def deduplicate(found: List[Tuple[str, str, str]], noun: str = "image",
                first_in_order: bool = False):
    """found: (id, label, digest) in scan order -> (records [(id, label)], duplicates
    [(id, kind, why)]). The copy kept is the smallest id (image paths), or with
    ``first_in_order`` the first found (rows of a file: line 9 before line 10)."""
    position = {item_id: n for n, (item_id, _, _) in enumerate(found)}
    by_digest: Dict[str, List[Tuple[str, str]]] = {}
    for item_id, label, digest in found:
        by_digest.setdefault(digest, []).append((item_id, label))
    records, duplicates = [], []
    for item_id, label, digest in found:
        copies = by_digest[digest]
        labels = sorted({lbl for _, lbl in copies})
        first = (min(copies, key=lambda c: position[c[0]])[0] if first_in_order
                 else min(i for i, _ in copies))
        if len(labels) > 1:
            others = ", ".join(i for i, _ in sorted(copies) if i != item_id)
            why = (f"the same {noun} is filed under {len(labels)} classes ({', '.join(labels)}): "
                   f"left out, as no single label is right - keep it in one class"
                   + (" folder" if noun == "image" else "") + f" (also: {others})")
            duplicates.append((item_id, contract.DUPLICATE_LABEL_CONFLICT, why))
        elif item_id != first:
            duplicates.append((item_id, contract.DUPLICATE_COPY, f"identical to {first}: kept once"))
        else:
            records.append((item_id, label))
    return records, duplicates
