"""GJSON paths and conditions: the examples of GJSON's SYNTAX.md and KServe's documented conditions."""

from __future__ import annotations

from typing import Any

import pytest

from modelplane.libs.errors import InvalidError
from modelplane.services.dataflow.graph import gjson

MISSING = object()

DOC: dict[str, Any] = {
    "name": {"first": "Tom", "last": "Anderson"},
    "age": 37,
    "children": ["Sara", "Alex", "Jack"],
    "fav.movie": "Deer Hunter",
    "friends": [
        {"first": "Dale", "last": "Murphy", "age": 44, "nets": ["ig", "fb", "tw"]},
        {"first": "Roger", "last": "Craig", "age": 68, "nets": ["fb", "tw"]},
        {"first": "Jane", "last": "Murphy", "age": 47, "nets": ["ig", "tw"]},
    ],
}

MURPHYS = [DOC["friends"][0], DOC["friends"][2]]

SYNTAX_EXAMPLES: list[tuple[str, Any]] = [
    # Basic
    ("name.last", "Anderson"),
    ("name.first", "Tom"),
    ("age", 37),
    ("children", ["Sara", "Alex", "Jack"]),
    ("children.0", "Sara"),
    ("children.1", "Alex"),
    ("friends.1", DOC["friends"][1]),
    ("friends.1.first", "Roger"),
    # Wildcards and escapes
    ("child*.2", "Jack"),
    ("c?ildren.0", "Sara"),
    (r"fav\.movie", "Deer Hunter"),
    # Arrays
    ("friends.#", 3),
    ("friends.#.age", [44, 68, 47]),
    ("friends.#.first", ["Dale", "Roger", "Jane"]),
    # Queries
    ('friends.#(last=="Murphy").first', "Dale"),
    ('friends.#(last=="Murphy")#.first', ["Dale", "Jane"]),
    ("friends.#(age>45)#.last", ["Craig", "Murphy"]),
    ('friends.#(first%"D*").last', "Murphy"),
    ('friends.#(first!%"D*").last', "Craig"),
    ('children.#(!%"*a*")', "Alex"),
    ('children.#(%"*a*")#', ["Sara", "Jack"]),
    ('friends.#(nets.#(=="fb"))#.first', ["Dale", "Roger"]),
    ("friends.#[age>45]#.last", ["Craig", "Murphy"]),
    # Dot vs pipe
    ("friends|0.first", "Dale"),
    ("friends.0|first", "Dale"),
    ("friends|0|first", "Dale"),
    ("friends|#", 3),
    ('friends.#(last="Murphy")#', MURPHYS),
    ('friends.#(last="Murphy")#|first', MISSING),
    ('friends.#(last="Murphy")#.0', []),
    ('friends.#(last="Murphy")#|0', DOC["friends"][0]),
    ('friends.#(last="Murphy")#.#', []),
    ('friends.#(last="Murphy")#|#', 2),
    # Modifiers
    ("children.@reverse", ["Jack", "Alex", "Sara"]),
    ("children.@reverse.0", "Jack"),
    ("@this.age", 37),
    ("name.@keys", ["first", "last"]),
    ("name.@values", ["Tom", "Anderson"]),
    ('@pretty:{"sortKeys":true}.age', 37),
    # Multipaths and literals
    (
        '{name.first,age,"the_murphys":friends.#(last="Murphy")#.first}',
        {"first": "Tom", "age": 37, "the_murphys": ["Dale", "Jane"]},
    ),
    ("[name.first,age,children.0]", ["Tom", 37, "Sara"]),
    ("[name.first,nothing,age]", ["Tom", 37]),
    ("{@this.age,friends.#}", {"age": 37, "_": 3}),
    ('{"a":!true,"b":!"x"}', {"a": True, "b": "x"}),
    ("!123", 123),
    # Not there
    ("nothing", MISSING),
    ("name.middle", MISSING),
    ("children.3", MISSING),
    ("children.x", MISSING),
    ("age.#", MISSING),
    ("name.#", MISSING),
    ('friends.#(last=="Smith").first', MISSING),
    ('friends.#(last=="Smith")#', []),
]


@pytest.mark.parametrize(("path", "expected"), SYNTAX_EXAMPLES)
def test_syntax_examples(path: str, expected: Any) -> None:
    """Each path of GJSON's SYNTAX.md finds what GJSON documents for it."""
    result = gjson.get(DOC, path)
    if expected is MISSING:
        assert not result.exists
    else:
        assert result.exists
        assert result.value == expected


VALS = {
    "vals": [
        {"a": 1, "b": True},
        {"a": 2, "b": True},
        {"a": 3, "b": False},
        {"a": 4, "b": "0"},
        {"a": 5, "b": 0},
        {"a": 6, "b": "1"},
        {"a": 7, "b": 1},
        {"a": 8, "b": "true"},
        {"a": 9, "b": False},
        {"a": 10, "b": None},
        {"a": 11},
    ]
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("vals.#(b==~true)#.a", [1, 2, 6, 7, 8]),
        ("vals.#(b==~false)#.a", [3, 4, 5, 9, 10, 11]),
        ("vals.#(b==~null)#.a", [10, 11]),
        ("vals.#(b!=~null)#.a", [1, 2, 3, 4, 5, 6, 7, 8, 9]),
        ("vals.#(b==~*)#.a", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
        ("vals.#(b)#.a", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
    ],
)
def test_truthiness_operator(path: str, expected: list[int]) -> None:
    """``~`` compares truthiness as GJSON does; a missing value is false."""
    assert gjson.get(VALS, path).value == expected


COMPARE_DOC = {
    "items": [
        {"s": "abc", "n": 5, "f": 2.5, "t": True, "z": False, "null": None, "o": {"k": 1}},
    ]
}


@pytest.mark.parametrize(
    ("query", "hit"),
    [
        # strings: quoted or not, ordered as strings
        ('s=="abc"', True),
        ("s==abc", True),
        ('s!="abc"', False),
        ('s<"abd"', True),
        ('s>="abc"', True),
        ('s>"b"', False),
        ('s%"a?c"', True),
        ('s%"A*"', False),
        ('s!%"x*"', True),
        # numbers: compared numerically; a right side that is not a number reads as 0
        ("n==5", True),
        ('n=="5"', True),
        ("n==5.0", True),
        ("n!=5", False),
        ("n<10", True),
        ("n<=5", True),
        ("n>5", False),
        ("n>=5", True),
        ("f>2", True),
        ("f<2.5", False),
        ("n>abc", True),
        ("n==abc", False),
        # booleans
        ("t==true", True),
        ("t!=true", False),
        ("t>false", True),
        ("t>=anything", True),
        ("t<false", False),
        ("z==false", True),
        ("z<true", True),
        ("z<=x", True),
        ("z>true", False),
        # null, objects and arrays match no operator, but exist
        ("null==null", False),
        ("null", True),
        ("o==1", False),
        ("o", True),
        ("o.k==1", True),
        # missing paths never match
        ("missing==1", False),
        ("missing!=1", False),
        ("missing", False),
    ],
)
def test_comparisons(query: str, hit: bool) -> None:
    """Each comparison matches (or not) the way GJSON compares that type."""
    assert gjson.matches(COMPARE_DOC, f"items.#({query})") is hit


V2_RESPONSE = {
    "model_name": "cat-dog",
    "outputs": [{"name": "predict", "datatype": "BYTES", "shape": [1], "data": ["dog"]}],
}
V1_RESPONSE = {"predictions": ["dog"]}
V2_REQUEST = {"inputs": [{"name": "x", "datatype": "INT64", "shape": [1], "data": [7]}]}


@pytest.mark.parametrize(
    ("doc", "condition", "hit"),
    [
        # KServe's documented Sequence condition (dog breed after cat/dog classifier)
        (V1_RESPONSE, '[@this].#(predictions.0=="dog")', True),
        ({"predictions": ["cat"]}, '[@this].#(predictions.0=="dog")', False),
        ({"other": 1}, '[@this].#(predictions.0=="dog")', False),
        # the same on V2 answers
        (V2_RESPONSE, 'outputs.#(name=="predict").data.0', True),
        (V2_RESPONSE, '[@this].#(outputs.0.data.0=="dog")', True),
        (V2_RESPONSE, 'outputs.#(data.#(=="cat"))', False),
        (V2_REQUEST, "[@this].#(inputs.0.data.0>5)", True),
        (V2_REQUEST, "[@this].#(inputs.0.data.0>7)", False),
        (V2_REQUEST, 'inputs.#(datatype=="INT64")', True),
        # plain existence, as most Switch conditions are
        (V2_REQUEST, "inputs", True),
        (V2_REQUEST, "instances", False),
        ({"a": None}, "a", True),
    ],
)
def test_kserve_conditions(doc: Any, condition: str, hit: bool) -> None:
    """Conditions written the way KServe documents them match like KServe's router."""
    assert gjson.matches(doc, condition) is hit


def test_flatten_join_and_reverse_modifiers() -> None:
    """@flatten, @join and @reverse reshape the value they are applied to."""
    doc = {"xs": [[1], [2, [3]], 4], "parts": [{"a": 1}, {"b": 2}], "o": {"a": 1, "b": 2}}
    assert gjson.get(doc, "xs.@flatten").value == [1, 2, [3], 4]
    assert gjson.get(doc, "parts.@join").value == {"a": 1, "b": 2}
    assert list(gjson.get(doc, "o.@reverse").value) == ["b", "a"]


def test_wildcard_takes_the_first_matching_key() -> None:
    """A wildcard key finds the first matching key in document order."""
    doc = {"beta": 1, "alpha": 2, "alps": 3}
    assert gjson.get(doc, "al*").value == 2
    assert gjson.get(doc, "al?s").value == 3
    assert gjson.get({"a*b": 1, "axb": 2}, r"a\*b").value == 1


def test_escaped_separators_and_specials_are_plain_characters() -> None:
    """Escaped ``.``, ``|``, ``@`` and ``#`` belong to the key."""
    doc = {"a.b": {"c|d": 1}, "@type": "x", "#tag": 2}
    assert gjson.get(doc, r"a\.b.c\|d").value == 1
    assert gjson.get(doc, r"\@type").value == "x"
    assert gjson.get(doc, r"\#tag").value == 2


def test_root_arrays_are_queried_directly() -> None:
    """A path may start with ``#`` or an index when the document is an array."""
    doc = [{"a": 1}, {"a": 2}]
    assert gjson.get(doc, "#").value == 2
    assert gjson.get(doc, "#.a").value == [1, 2]
    assert gjson.get(doc, "#(a==2)").value == {"a": 2}
    assert gjson.get(doc, "1.a").value == 2


def test_quoted_values_may_hold_operators_and_parentheses() -> None:
    """A quoted right side is read as a JSON string, whatever it contains."""
    doc = {"xs": [{"s": "a)b==c"}, {"s": 'q"uote'}]}
    assert gjson.get(doc, r'xs.#(s=="a)b==c")').exists
    assert gjson.get(doc, r'xs.#(s=="q\"uote")').exists


@pytest.mark.parametrize(
    "path",
    [
        "",
        "a..b",
        "a.",
        ".a",
        "a.#(b==1",
        'a.#(b=="1)',
        "[a,b",
        "{a,b",
        '{"k" a}',
        "a.@nosuch",
        "a.#()",
        "a\\",
        "a.#x",
        "!nope",
        'a.#(b=="x"y)',
    ],
)
def test_malformed_paths_are_invalid(path: str) -> None:
    """A malformed path is an InvalidError that names the path."""
    with pytest.raises(InvalidError) as caught:
        gjson.compile_path(path)
    assert repr(path) in str(caught.value)


def test_compiled_paths_are_cached() -> None:
    """Compiling the same text twice returns the same compiled path."""
    assert gjson.compile_path("a.b") is gjson.compile_path("a.b")
