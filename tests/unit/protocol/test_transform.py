"""protocol/transform.py: nats-server's subject transforms, weighted mappings and their
errors. Expected values follow subject_transform.go; the integration test
test_mappings_reference.py checks the same functions against a running nats-server."""

from __future__ import annotations

import random

import pytest

from shardbroker.protocol.transform import (
    SubjectMappings,
    SubjectTransform,
    TransformError,
    check_mapping,
    fnv1a32,
    is_valid_source,
    subject_mappings,
)


def one(source: str, destination: str, subject: bytes, rand: float = 0.5) -> bytes | None:
    return SubjectMappings([(source, [(destination, 100)])], rand=lambda: rand).map(subject, 0.0)


def test_transform_fnv1a32_vectors():
    assert fnv1a32(b"") == 0x811C9DC5
    assert fnv1a32(b"a") == 0xE40C292C
    assert fnv1a32(b"foobar") == 0xBF9CF968


@pytest.mark.parametrize(
    ("source", "destination", "subject", "expected"),
    [
        ("a.*", "b.$1", b"a.x", b"b.x"),
        ("a.*.*", "b.$2.$1", b"a.x.y", b"b.y.x"),
        ("a.*.*", "b.{{wildcard(2)}}.{{ Wildcard ( 1 ) }}", b"a.x.y", b"b.y.x"),
        ("a.*.*", "b.$0.$-1", b"a.x.y", b"b.a.a"),  # an index below 1 reads token 0
        ("a.*", "b.$foo.$1", b"a.x", b"b.$foo.x"),  # not a number: a literal token
        ("a.>", "b.>", b"a.x.y.z", b"b.x.y.z"),
        ("a.*.>", "b.$1.c.>", b"a.x.y.z", b"b.x.c.y.z"),
        (">", ">", b"x.y", b"x.y"),
        ("a.b", "c.d", b"a.b", b"c.d"),
        ("a.*", "b.{{wildcard(1)}}x", b"a.q", b"b.{{wildcard(1)}}x"),  # not a function token
        ("a.*", "b.{{split(1,.)}}", b"a.q", b"b.{{split(1,.)}}"),  # split on "." by accident
        ("a.*", "{{split(1,-)}}", b"a.x-y-z", b"x.y.z"),
        ("a.*", "{{split(1,-)}}", b"a.-x--y-", b"x.y"),
        ("a.*", "{{split(1,-)}}", b"a.-", b""),
        ("a.*", "{{split(1,--)}}", b"a.x--y-z", b"x.y-z"),
        ("a.*", "{{split(1,)}}", "a.xé".encode(), "x.é".encode()),
        ("a.*", "{{splitFromLeft(1,2)}}", b"a.abcdef", b"ab.cdef"),
        ("a.*", "{{splitFromLeft(1,6)}}", b"a.abcdef", b"abcdef"),
        ("a.*", "{{splitFromLeft(1,0)}}", b"a.abcdef", b"abcdef"),
        ("a.*", "{{splitFromRight(1,2)}}", b"a.abcdef", b"abcd.ef"),
        ("a.*", "{{sliceFromLeft(1,2)}}", b"a.abcde", b"ab.cd.e"),
        ("a.*", "{{sliceFromLeft(1,2)}}", b"a.abcdef", b"ab.cd.ef"),
        ("a.*", "{{sliceFromLeft(1,9)}}", b"a.abc", b"abc"),
        ("a.*", "{{sliceFromRight(1,2)}}", b"a.abcde", b"a.bc.de"),
        ("a.*", "{{sliceFromRight(1,2)}}", b"a.abcdef", b"ab.cd.ef"),
        ("a.*", "{{left(1,2)}}.{{right(1,2)}}", b"a.abcde", b"ab.de"),
        ("a.*", "{{left(1,-1)}}.{{right(1,5)}}", b"a.abcde", b"abcde.abcde"),
        ("a.*", "{{random(10)}}", b"a.x", b"4"),  # rand 0.5: 2**30 % 10
        ("a.*", "{{random(0)}}", b"a.x", b"0"),
        ("a.*", "{{random(-10)}}", b"a.x", b"4"),
    ],
)
def test_transform_functions(source, destination, subject, expected):
    assert one(source, destination, subject) == expected


def test_transform_partition_is_fnv1a_of_the_tokens():
    # partition(n, i, j): the tokens concatenated without dots; partition(n): the subject.
    subject = b"p.k1.k2"
    assert one("p.*.*", "{{partition(7,1,2)}}", subject) == str(fnv1a32(b"k1k2") % 7).encode()
    assert one("p.*.*", "{{partition(7)}}", subject) == str(fnv1a32(subject) % 7).encode()
    assert one("p.*.*", "{{partition(7,0)}}", subject) == str(fnv1a32(b"p") % 7).encode()
    assert one("p.*.*", "{{partition(0,1)}}", subject) == b"0"
    # Go's uint32(int32(-3)).
    assert (
        one("p.*.*", "{{partition(-3,1)}}", subject) == str(fnv1a32(b"k1") % (2**32 - 3)).encode()
    )
    values = {one("p.*", "q.{{partition(5,1)}}", f"p.{i}".encode()) for i in range(200)}
    assert values == {b"q.0", b"q.1", b"q.2", b"q.3", b"q.4"}


def test_transform_literal_source_first_hashes_nothing():
    # nats-server does not split the subject when the first mapping is a matching literal.
    first = SubjectMappings([("c.d", [("z.{{partition(7)}}", 100)]), ("c.*", [("w.$1", 100)])])
    assert first.map(b"c.d", 0.0) == b"z." + str(fnv1a32(b"") % 7).encode()
    later = SubjectMappings([("c.*.e", [("w.$1", 100)]), ("c.d", [("z.{{partition(7)}}", 100)])])
    assert later.map(b"c.d", 0.0) == b"z." + str(fnv1a32(b"c.d") % 7).encode()


def test_mappings_first_match_in_order_literal_not_preferred():
    wild_first = SubjectMappings([("a.*", [("x.$1", 100)]), ("a.b", [("y", 100)])])
    assert wild_first.map(b"a.b", 0.0) == b"x.b"
    literal_first = SubjectMappings([("a.b", [("y", 100)]), ("a.*", [("x.$1", 100)])])
    assert literal_first.map(b"a.b", 0.0) == b"y"
    assert literal_first.map(b"a.c", 0.0) == b"x.c"
    # A source given again replaces the earlier one in its place.
    again = SubjectMappings(
        [("a.*", [("x.$1", 100)]), ("a.b", [("y", 100)]), ("a.*", [("z", 100)])]
    )
    assert again.map(b"a.b", 0.0) == b"z"


def test_mappings_no_match_and_empty():
    table = SubjectMappings([("a.*", [("b.$1", 100)])])
    assert table.map(b"a", 0.0) is None
    assert table.map(b"a.b.c", 0.0) is None
    assert table.map(b"z.b", 0.0) is None
    assert not table.matches(b"z.b")
    assert table.matches(b"a.q")
    assert subject_mappings([]) is None
    assert subject_mappings([("a", [("b", 100)])]) is not None


def test_mappings_published_wildcard_tokens():
    table = SubjectMappings([("a.*", [("b.$1", 100)]), ("c.>", [("d.>", 100)])])
    assert table.map(b"a.*", 0.0) == b"b.*"
    assert table.map(b"a.>", 0.0) is None  # nats: a ">" token is reached only by ">"
    assert table.map(b"a.", 0.0) is None
    assert table.map(b"c.>", 0.0) == b"d.>"


def test_mappings_weights_and_the_rest_unchanged():
    table = SubjectMappings([("a.*", [("b.$1", 30), ("c.$1", 50)])])
    # Sorted by weight, then cumulative: the implicit "unchanged" (20), b (30), c (50).
    picks = {i: table.map(b"a.x", i / 100) for i in range(100)}
    assert [picks[i] for i in (0, 19)] == [b"a.x", b"a.x"]
    assert [picks[i] for i in (20, 49)] == [b"b.x", b"b.x"]
    assert [picks[i] for i in (50, 99)] == [b"c.x", b"c.x"]
    counts = {s: list(picks.values()).count(s) for s in set(picks.values())}
    assert counts == {b"a.x": 20, b"b.x": 30, b"c.x": 50}


def test_mappings_weights_source_listed_drops_the_rest():
    table = SubjectMappings([("q", [("q", 50), ("r", 20)])])
    picks = [table.map(b"q", i / 100) for i in range(100)]
    assert picks.count(b"r") == 20
    assert picks.count(b"q") == 50
    assert picks.count(b"") == 30


def test_mappings_single_destination_ignores_draw_and_caches():
    table = SubjectMappings([("a.*", [("b.{{partition(3,1)}}", 100)])])
    assert table.map(b"a.x", 0.99) == table.map(b"a.x", 0.0)
    assert table._cache[b"a.x"] == table.map(b"a.x", 0.5)  # a fixed result is cached


def test_mappings_random_uses_rand():
    rng = random.Random(7)
    table = SubjectMappings([("a", [("r.{{random(4)}}", 100)])], rand=rng.random)
    seen = {table.map(b"a", 0.0) for _ in range(200)}
    assert seen == {b"r.0", b"r.1", b"r.2", b"r.3"}


def test_mappings_cluster_scoped_destinations():
    entries = [("a", [("b", 100, "east"), ("c", 40)])]
    assert SubjectMappings(entries).map(b"a", 0.1) == b"c"
    assert SubjectMappings(entries).map(b"a", 0.9) == b"a"
    assert SubjectMappings(entries, cluster="east").map(b"a", 0.9) == b"b"
    assert SubjectMappings(entries, cluster="west").map(b"a", 0.9) == b"a"


def test_mappings_cache_is_bounded():
    table = SubjectMappings([("a.*", [("b.$1", 100)])])
    for i in range(5000):
        assert table.map(f"a.{i}".encode(), 0.0) == f"b.{i}".encode()
    assert len(table._cache) <= 4096


@pytest.mark.parametrize(
    ("source", "destination", "error"),
    [
        ("a.*", "b.{{foo(1)}}", "invalid mapping destination: unknown function in {{foo(1)}}"),
        ("a.*", "b.{{unknown}}", "invalid mapping destination: unknown function in {{unknown}}"),
        ("a.*", "b.$2", "invalid mapping destination: wildcard index out of range in $2: [2]"),
        (
            "a.*",
            "b.{{wildcard(2)}}",
            "invalid mapping destination: wildcard index out of range in {{wildcard(2)}}: [2]",
        ),
        (
            "a.*",
            "b.{{partition(3,2)}}",
            "invalid mapping destination: wildcard index out of range in {{partition(3,2)}}: [2]",
        ),
        ("a", "b.$1", "invalid mapping destination: wildcard index out of range in $1"),
        (
            "a",
            "b.{{left(1,1)}}",
            "invalid mapping destination: wildcard index out of range in {{left(1,1)}}",
        ),
        ("a.*", "b..c", "invalid mapping destination: invalid transform"),
        ("a.>", "b.>.c", "invalid mapping destination: invalid transform in c"),
        ("a.*", "b.c d", "invalid mapping destination: invalid transform"),
        ("a.*", "b.*", "invalid subject"),
        ("a.*", "b.>", "invalid subject"),
        ("a.>", "b.c", "invalid subject"),
        ("a.*", "", "invalid mapping destination: empty destination"),
        (
            "a.*",
            "b.{{split(1,x y)}}",
            "invalid mapping destination: function argument is invalid or in the wrong format"
            " in {{split(1,x y)}}",
        ),
        (
            "a.*",
            "b.{{split(1)}}",
            "invalid mapping destination: not enough arguments passed to the function"
            " in {{split(1)}}",
        ),
        (
            "a.*",
            "b.{{splitFromLeft(1)}}",
            "invalid mapping destination: not enough arguments passed to the function"
            " in {{splitFromLeft(1)}}",
        ),
        (
            "a.*",
            "b.{{sliceFromRight(1,2,3)}}",
            "invalid mapping destination: too many arguments passed to the function"
            " in {{sliceFromRight(1,2,3)}}",
        ),
        (
            "a.*",
            "b.{{right(x,2)}}",
            "invalid mapping destination: function argument is invalid or in the wrong format"
            " in {{right(x,2)}}",
        ),
        (
            "a.*",
            "b.{{left(1,3000000000)}}",
            "invalid mapping destination: function argument is invalid or in the wrong format"
            " in {{left(1,3000000000)}}",
        ),
        (
            "a.*",
            "b.{{wildcard()}}",
            "invalid mapping destination: not enough arguments passed to the function"
            " in {{wildcard()}}",
        ),
        (
            "a.*",
            "b.{{wildcard(1,2)}}",
            "invalid mapping destination: too many arguments passed to the function"
            " in {{wildcard(1,2)}}",
        ),
        (
            "a.*",
            "b.{{partition(x,1)}}",
            "invalid mapping destination: function argument is invalid or in the wrong format"
            " in {{partition(x,1)}}",
        ),
        (
            "a.*",
            "b.{{partition(3000000000)}}",
            "invalid mapping destination: function argument is invalid or in the wrong format"
            " in {{partition(3000000000)}}",
        ),
        (
            "a.*",
            "b.{{random()}}",
            "invalid mapping destination: function argument is invalid or in the wrong format"
            " in {{random()}}",
        ),
        (
            "a.*",
            "b.{{random(1,2)}}",
            "invalid mapping destination: not enough arguments passed to the function"
            " in {{random(1,2)}}",
        ),
    ],
)
def test_transform_errors(source, destination, error):
    with pytest.raises(TransformError) as info:
        check_mapping(source, [(destination, 100)])
    assert str(info.value) == error


@pytest.mark.parametrize(
    ("destinations", "error"),
    [
        ([("b.$1", 60), ("c.$1", 50)], "total weight needs to be <= 100"),
        ([("b.$1", 60), ("b.$1", 10)], 'duplicate entry for "b.$1"'),
        ([("b.$1", 101)], "individual weights need to be <= 100"),
        ([("b", 60, "e"), ("c", 50, "e")], "total weight needs to be <= 100"),
    ],
)
def test_mappings_weight_errors(destinations, error):
    with pytest.raises(TransformError) as info:
        check_mapping("a.*", destinations)
    assert str(info.value) == error
    check_mapping("a.*", [("b", 60, "e"), ("c", 50, "w")])  # totals are per cluster


def test_mappings_sources():
    assert is_valid_source("a.*.>")
    for bad in ("", "a..b", "a.>.b", "a b", " ", "a.\t"):
        assert not is_valid_source(bad)
    with pytest.raises(TransformError, match=r"^invalid subject$"):
        SubjectMappings([("a..b", [("c", 100)])])
    # The implicit "unchanged" destination is a transform too: "$2" in the source fails.
    with pytest.raises(TransformError, match=r"out of range in \$2: \[2\]"):
        check_mapping("a.$2.*", [("b.$1", 50)])


def test_transform_constant_destination():
    transform = SubjectTransform("a.b", "c.{{partition(3)}}")
    assert transform.transform([]) == b"c." + str(fnv1a32(b"") % 3).encode()
    assert SubjectTransform("a.*", "c.d").transform([b"a", b"x"]) == b"c.d"
