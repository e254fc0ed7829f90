"""V2 JSON tensor helpers: emptiness, merging, batch concat and split."""

from __future__ import annotations

from modelplane.services.dataflow.engine.tensors import concat, flatten, is_empty, merged, split
from tests.dataflow.engine.models import tensor


def test_flatten_reads_nested_data_row_major() -> None:
    """Nested data flattens row-major; a scalar is one element."""
    assert flatten([[1, 2], [3, [4]]]) == [1, 2, 3, 4]
    assert flatten(5) == [5]


def test_a_zero_dimension_or_missing_data_is_empty() -> None:
    """Empty means a 0 in the shape or no data; any data point is not empty."""
    assert is_empty(tensor("A", [], shape=[1, 0]))
    assert is_empty({"name": "A", "datatype": "FP32", "shape": [1]})
    assert is_empty({"name": "A", "datatype": "FP32", "shape": [1, 1], "data": [[]]})
    assert not is_empty(tensor("A", [0]))


def test_merged_keeps_first_position_and_last_value_of_a_name() -> None:
    """A later tensor of the same name replaces the earlier one, in the earlier's place."""
    out = merged([tensor("A", [1]), tensor("B", [2]), tensor("A", [3])])
    assert [(t["name"], t["data"]) for t in out] == [("A", [3]), ("B", [2])]


def test_concat_stacks_rows_and_split_gives_them_back() -> None:
    """Concatenation along the first dimension round-trips through split."""
    parts = [[tensor("X", [1, 2], shape=[1, 2])], [tensor("X", [[3, 4], [5, 6]], shape=[2, 2])]]
    batched = concat(parts)
    assert batched is not None
    tensors, rows = batched
    assert rows == [1, 2]
    assert tensors[0]["shape"] == [3, 2]
    assert tensors[0]["data"] == [1, 2, 3, 4, 5, 6]
    back = split([*tensors, tensor("N", [3], shape=[1])], rows)
    assert [t["data"] for t in back[0]] == [[1, 2], [3]]
    assert [t["data"] for t in back[1]] == [[3, 4, 5, 6], [3]]
    assert back[1][0]["shape"] == [2, 2]


def test_concat_refuses_what_cannot_be_stacked() -> None:
    """Other names, datatypes, trailing dimensions or disagreeing first dimensions: no batch."""
    one = [tensor("X", [1, 2], shape=[1, 2])]
    assert concat([one, [tensor("Y", [1, 2], shape=[1, 2])]]) is None
    assert concat([one, [tensor("X", [1, 2], shape=[1, 2], datatype="INT64")]]) is None
    assert concat([one, [tensor("X", [1, 2, 3], shape=[1, 3])]]) is None
    assert concat([one, [tensor("X", [1, 2], shape=[1, 2]), tensor("Z", [1, 2], shape=[2, 1])]]) is None
