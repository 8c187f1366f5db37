"""pyfalloc.sortedindex against sortedcontainers: the same operations in the same order give
the same answers (random sequences, sizes crossing the chunk splits and joins)."""
import sortedcontainers
from hypothesis import given, settings
from hypothesis import strategies as hs

from pyfalloc import sortedindex

KEYS = hs.integers(0, 3000)
OPS = hs.lists(hs.tuples(hs.sampled_from(["add", "remove", "query"]), KEYS, KEYS), min_size=1, max_size=400)


def _queries(mine, theirs, a, b):
    assert len(mine) == len(theirs)
    assert list(mine) == list(theirs)
    assert (a in mine) == (a in theirs)
    assert mine.bisect_left(a) == theirs.bisect_left(a)
    assert mine.bisect_right(a) == theirs.bisect_right(a)
    lo, hi = min(a, b), max(a, b)
    for inc in ((True, True), (False, False), (True, False), (False, True)):
        assert list(mine.irange(lo, hi, inclusive=inc)) == list(theirs.irange(lo, hi, inclusive=inc))
    assert list(mine.irange(minimum=lo)) == list(theirs.irange(minimum=lo))
    assert list(mine.irange(maximum=hi, inclusive=(True, False))) == list(theirs.irange(maximum=hi, inclusive=(True, False)))
    n = len(theirs)
    if n:
        for i in (0, n - 1, -1, -n, a % n, b % n):
            assert mine[i] == theirs[i]
        assert list(mine.islice(a % n)) == list(theirs.islice(a % n))
        assert list(mine.islice(a % n, b % n)) == list(theirs.islice(a % n, b % n))


@settings(max_examples=60, deadline=None)
@given(hs.integers(0, 6000), OPS)
def test_sorted_list_matches_sortedcontainers(size, ops):
    start = [i * 7919 % 3001 for i in range(size)]      # up to a dozen chunks, duplicates
    mine, theirs = sortedindex.SortedList(start), sortedcontainers.SortedList(start)
    for op, a, b in ops:
        if op == "add":
            for v in range(a, a + b % 700):         # runs: chunks fill up and split
                mine.add(v)
                theirs.add(v)
        elif op == "remove":
            for v in list(theirs.irange(a, a + b % 900)):   # runs: chunks drain and join
                mine.remove(v)
                theirs.remove(v)
        _queries(mine, theirs, a, b)
    assert [mine[i] for i in range(-len(theirs), len(theirs))] == list(theirs) * 2


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_sorted_dict_matches_sortedcontainers(ops):
    mine, theirs = sortedindex.SortedDict(), sortedcontainers.SortedDict()
    for op, a, b in ops:
        if op == "add":
            for k in range(a, a + b % 700, 3):
                mine[k] = theirs[k] = (k, b)
        elif op == "remove":
            for k in list(theirs.irange(a, a + b % 900)):
                if k % 2:
                    assert mine.pop(k) == theirs.pop(k)
                else:
                    del mine[k], theirs[k]
            assert mine.pop(-1, "none") == theirs.pop(-1, "none")
        else:                                       # a batch: a few keys, or many at once
            batch = {k: (k, a) for k in range(b, b + (a % 40 if a % 3 else a))}
            mine.update(batch)
            theirs.update(batch)
        assert list(mine.items()) == list(theirs.items())
        assert list(mine.values()) == list(theirs.values())
        assert dict(mine) == dict(theirs) and list(mine) == list(theirs)
        if theirs:
            i = a % len(theirs)
            assert mine.peekitem(i) == theirs.peekitem(i) and mine.peekitem() == theirs.peekitem()
        assert mine.bisect_right(a) == theirs.bisect_right(a)
        assert list(mine.irange(a, b)) == list(theirs.irange(a, b))
    assert [mine.peekitem(i) for i in range(len(theirs))] == list(theirs.items())


def test_missing_items_raise_as_sortedcontainers():
    s = sortedindex.SortedList([1, 2])
    d = sortedindex.SortedDict({1: "a"})
    for call, exc in ((lambda: s.remove(3), ValueError), (lambda: s[2], IndexError),
                      (lambda: d.pop(2), KeyError), (lambda: d[2], KeyError)):
        try:
            call()
        except exc:
            continue
        raise AssertionError(f"{call} did not raise {exc.__name__}")
    s.discard(3)
    assert list(s) == [1, 2]
    assert d.popitem() == (1, "a") and not d
