"""Sorted indexes for the metadata tables: a sorted list and a dict whose keys iterate in
order, with the positional look-ups the allocator uses (bisect, peekitem, irange, islice).

The method names and meanings are those of sortedcontainers (the tests check these against
it). They are written here because importing sortedcontainers costs a served process's
start about 15 ms (it imports traceback and textwrap, and with them re, enum and tokenize),
most of what a process may spend before its first image call.

Layout: the items in sorted chunks of at most 2 * _LOAD, the last item of each chunk in
`_maxes`, and a Fenwick tree over the chunks' lengths for positions. An insert or delete
costs a bisect in the maxes, one in a chunk, a list insert of at most 2 * _LOAD references
and a tree update: O(log n) steps, flat from a thousand items to millions.
"""
from bisect import bisect_left, bisect_right, insort
from itertools import chain, islice

_LOAD = 500


class SortedList:
    __slots__ = ("_lists", "_maxes", "_len", "_tree")

    def __init__(self, iterable=()):
        items = sorted(iterable)
        if len(items) <= _LOAD:         # most indexes (an inode's extents) are this small
            self._lists = [items] if items else []
        else:
            self._lists = [items[i:i + _LOAD] for i in range(0, len(items), _LOAD)]
        self._maxes = [sub[-1] for sub in self._lists]
        self._len = len(items)
        self._tree = None           # built at the first positional look-up after a reshape

    # ---- positions ------------------------------------------------------------------------------
    def _index(self):
        tree = self._tree
        if tree is None:
            m = len(self._lists)
            tree = [0] * (m + 1)
            for j, sub in enumerate(self._lists, 1):
                tree[j] += len(sub)
                up = j + (j & -j)
                if up <= m:
                    tree[up] += tree[j]
            self._tree = tree
        return tree

    def _grew(self, j, delta):
        tree = self._tree
        if tree is not None:
            m = len(tree) - 1
            j += 1
            while j <= m:
                tree[j] += delta
                j += j & -j

    def _before(self, j):
        """Items in the chunks before chunk j."""
        tree = self._index()
        total = 0
        while j:
            total += tree[j]
            j &= j - 1
        return total

    def _locate(self, i):
        """Position 0 <= i < len as (chunk, offset in it)."""
        tree = self._index()
        m = len(tree) - 1
        j = 0
        step = 1 << (m.bit_length() - 1) if m else 0
        while step:
            up = j + step
            if up <= m and tree[up] <= i:
                i -= tree[up]
                j = up
            step >>= 1
        return j, i

    # ---- changes ----------------------------------------------------------------------------------
    def add(self, value):
        lists, maxes = self._lists, self._maxes
        self._len += 1
        if not maxes:
            lists.append([value])
            maxes.append(value)
            self._tree = None
            return
        j = bisect_right(maxes, value)
        if j == len(maxes):
            j -= 1
            sub = lists[j]
            sub.append(value)
            maxes[j] = value
        else:
            sub = lists[j]
            insort(sub, value)
        if len(sub) > 2 * _LOAD:
            lists.insert(j + 1, sub[_LOAD:])
            del sub[_LOAD:]
            maxes[j] = sub[-1]
            maxes.insert(j + 1, lists[j + 1][-1])
            self._tree = None
        else:
            self._grew(j, 1)

    def remove(self, value):
        lists, maxes = self._lists, self._maxes
        j = bisect_left(maxes, value)
        if j < len(maxes):
            sub = lists[j]
            k = bisect_left(sub, value)
            if sub[k] == value:
                self._delete(j, k)
                return
        raise ValueError(f"{value!r} not in list")

    def discard(self, value):
        if value in self:
            self.remove(value)

    def _delete(self, j, k):
        lists, maxes = self._lists, self._maxes
        sub = lists[j]
        del sub[k]
        self._len -= 1
        if len(sub) >= _LOAD // 2 or len(lists) == 1:
            if not sub:
                del lists[j], maxes[j]
                self._tree = None
                return
            maxes[j] = sub[-1]
            self._grew(j, -1)
            return
        # a chunk run low joins a neighbour (chunks never dwindle to a list per item)
        if j == 0:
            j = 1
        prev = lists[j - 1]
        prev.extend(lists[j])
        del lists[j], maxes[j]
        maxes[j - 1] = prev[-1]
        if len(prev) > 2 * _LOAD:
            half = len(prev) // 2
            lists.insert(j, prev[half:])
            del prev[half:]
            maxes[j - 1] = prev[-1]
            maxes.insert(j, lists[j][-1])
        self._tree = None

    # ---- look-ups ---------------------------------------------------------------------------------
    def __len__(self):
        return self._len

    def __iter__(self):
        return chain.from_iterable(self._lists)

    def __reversed__(self):
        return chain.from_iterable(reversed(sub) for sub in reversed(self._lists))

    def __contains__(self, value):
        j = bisect_left(self._maxes, value)
        if j == len(self._maxes):
            return False
        sub = self._lists[j]
        return sub[bisect_left(sub, value)] == value

    def __getitem__(self, i):
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError("sorted list index out of range")
        lists = self._lists
        if i < len(lists[0]):
            return lists[0][i]
        last = lists[-1]
        if i >= self._len - len(last):
            return last[i - self._len + len(last)]
        j, k = self._locate(i)
        return lists[j][k]

    def bisect_left(self, value):
        j = bisect_left(self._maxes, value)
        if j == len(self._maxes):
            return self._len
        return self._before(j) + bisect_left(self._lists[j], value)

    def bisect_right(self, value):
        j = bisect_right(self._maxes, value)
        if j == len(self._maxes):
            return self._len
        return self._before(j) + bisect_right(self._lists[j], value)

    def islice(self, start=None, stop=None):
        """Items at positions [start, stop), as an iterator."""
        start, stop, _ = slice(start, stop).indices(self._len)
        if start >= stop:
            return iter(())
        j, k = self._locate(start)
        return islice(self._from(j, k), stop - start)

    def irange(self, minimum=None, maximum=None, inclusive=(True, True)):
        """Items from minimum to maximum (None: unbounded), as an iterator."""
        lists, maxes = self._lists, self._maxes
        if minimum is None:
            j, k = 0, 0
        else:
            cut = bisect_left if inclusive[0] else bisect_right
            j = cut(maxes, minimum)
            k = cut(lists[j], minimum) if j < len(maxes) else 0
        items = self._from(j, k)
        if maximum is None:
            return items
        past = (lambda v: v > maximum) if inclusive[1] else (lambda v: v >= maximum)
        return _until(items, past)

    def _from(self, j, k):
        lists = self._lists
        if j >= len(lists):
            return iter(())
        return chain(islice(lists[j], k, None), chain.from_iterable(lists[j + 1:]))

    def __repr__(self):
        return f"{type(self).__name__}({list(self)!r})"


def _until(items, past):
    for v in items:
        if past(v):
            return
        yield v


class SortedDict(dict):
    """A dict whose keys iterate in sorted order, with the sorted list's look-ups over keys.
    Reads are the dict's own; every change goes through the methods below."""
    __slots__ = ("_keys",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._keys = SortedList(dict.keys(self))

    def __setitem__(self, key, value):
        if key not in self:
            self._keys.add(key)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key):
        dict.__delitem__(self, key)
        self._keys.remove(key)

    def pop(self, key, *default):
        if key in self:
            self._keys.remove(key)
            return dict.pop(self, key)
        if default:
            return default[0]
        raise KeyError(key)

    def popitem(self):
        """The last item (the greatest key), as sortedcontainers pops."""
        if not self:
            raise KeyError("popitem(): dictionary is empty")
        key = self._keys[-1]
        return key, self.pop(key)

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return dict.__getitem__(self, key)

    def update(self, *args, **kwargs):
        items = dict(*args, **kwargs)
        if len(items) * 8 < len(self):          # a few into many: an insert each
            for key, value in items.items():
                self[key] = value
        else:                                   # many (a table loaded whole): one sort
            dict.update(self, items)
            self._keys = SortedList(dict.keys(self))

    def __ior__(self, other):
        self.update(other)
        return self

    def clear(self):
        dict.clear(self)
        self._keys = SortedList()

    def copy(self):
        return type(self)(self.items())

    # iteration in key order
    def __iter__(self):
        return iter(self._keys)

    def __reversed__(self):
        return reversed(self._keys)

    def keys(self):
        return iter(self._keys)

    def values(self):
        return map(dict.__getitem__.__get__(self), self._keys)

    def items(self):
        get = dict.__getitem__.__get__(self)
        return ((k, get(k)) for k in self._keys)

    # positions and ranges over the keys
    def peekitem(self, index=-1):
        key = self._keys[index]
        return key, dict.__getitem__(self, key)

    def bisect_left(self, key):
        return self._keys.bisect_left(key)

    def bisect_right(self, key):
        return self._keys.bisect_right(key)

    def irange(self, minimum=None, maximum=None, inclusive=(True, True)):
        return self._keys.irange(minimum, maximum, inclusive)

    def islice(self, start=None, stop=None):
        return self._keys.islice(start, stop)

    def __repr__(self):
        return f"{type(self).__name__}({dict(self.items())!r})"
