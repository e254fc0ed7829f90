"""V2 JSON tensors inside the engine: emptiness, renaming, merging, batch concat and split.

A tensor is the Open Inference Protocol's JSON form ``{"name", "datatype", "shape", "data",
"parameters"?}``. ``data`` may be flat or nested (row-major either way); we flatten it only when
we must count or slice it. Tensors are never mutated: helpers return copies.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

Tensor = dict[str, Any]
# Marks the end of a nested list while flattening it without recursion.
_END = object()


def flatten(data: Any) -> list[Any]:
    """Row-major flat list of a (possibly nested) ``data`` value; a scalar becomes one element."""
    if not isinstance(data, list):
        return [data]
    out: list[Any] = []
    stack: list[Any] = [iter(data)]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, list):
            stack.append(iter(item))
        else:
            out.append(item)
    return out


def shape_of(tensor: Tensor) -> list[int]:
    shape = tensor.get("shape")
    return [int(d) for d in shape] if isinstance(shape, list) else []


def is_empty(tensor: Tensor) -> bool:
    """Empty (never fires a step): a 0 in the shape, or no data at all."""
    if any(d == 0 for d in shape_of(tensor)):
        return True
    return not _has_element(tensor.get("data"))


def _has_element(data: Any) -> bool:
    """Whether (possibly nested) ``data`` holds at least one value; stops at the first."""
    if data is None:
        return False
    if not isinstance(data, list):
        return True
    stack: list[Any] = [iter(data)]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, list):
            stack.append(iter(item))
        else:
            return True
    return False


def renamed(tensor: Tensor, name: str) -> Tensor:
    return tensor if tensor.get("name") == name else {**tensor, "name": name}


def merged(tensors: Iterable[Tensor]) -> list[Tensor]:
    """One tensor per name, in first-seen order; a later tensor of a name replaces the earlier."""
    by_name: dict[str, Tensor] = {}
    for tensor in tensors:
        by_name[str(tensor.get("name", ""))] = tensor
    return list(by_name.values())


# ---- micro-batching ------------------------------------------------------------------------------


def _rows(tensors: Sequence[Tensor]) -> int | None:
    """The first dimension every tensor of one request shares, or None when they disagree."""
    rows = {shape_of(t)[0] if shape_of(t) else -1 for t in tensors}
    if len(rows) != 1:
        return None
    (value,) = rows
    return value if value > 0 else None


def concat(requests: Sequence[Sequence[Tensor]]) -> tuple[list[Tensor], list[int]] | None:
    """Concatenate the same-named tensors of several requests along the first dimension.

    Returns the batched tensors (in the first request's order) and each request's row count, or
    None when they cannot be batched: other tensor names, datatypes, or trailing dimensions,
    or a request whose tensors disagree on their first dimension."""
    if not requests or not requests[0]:
        return None
    first = requests[0]
    names = [str(t.get("name", "")) for t in first]
    if len(set(names)) != len(names):
        return None
    rows: list[int] = []
    by_name: list[dict[str, Tensor]] = []
    for tensors in requests:
        count = _rows(tensors)
        table = {str(t.get("name", "")): t for t in tensors}
        if count is None or len(table) != len(tensors) or set(table) != set(names):
            return None
        rows.append(count)
        by_name.append(table)
    out: list[Tensor] = []
    for name, head in zip(names, first, strict=True):
        tail_shape = shape_of(head)[1:]
        data: list[Any] = []
        for table in by_name:
            tensor = table[name]
            if tensor.get("datatype") != head.get("datatype") or shape_of(tensor)[1:] != tail_shape:
                return None
            data.extend(flatten(tensor.get("data")))
        out.append({**head, "shape": [sum(rows), *tail_shape], "data": data})
    return out, rows


def split(outputs: Sequence[Tensor], rows: Sequence[int]) -> list[list[Tensor]]:
    """Each request's part of a batched answer: a tensor whose first dimension is the batch total
    is cut into the requests' rows; any other tensor is copied to each request."""
    total = sum(rows)
    parts: list[list[Tensor]] = [[] for _ in rows]
    for tensor in outputs:
        shape = shape_of(tensor)
        if not shape or shape[0] != total:
            for part in parts:
                part.append(tensor)
            continue
        data = flatten(tensor.get("data"))
        width = math.prod(shape[1:])
        offset = 0
        for part, count in zip(parts, rows, strict=True):
            part.append(
                {
                    **tensor,
                    "shape": [count, *shape[1:]],
                    "data": data[offset * width : (offset + count) * width],
                }
            )
            offset += count
    return parts
