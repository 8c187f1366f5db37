"""The plan: the fractional bound on what can be freed and what it must move, and the exact
strategy's choice of victims and holes."""
from pyfalloc.sortedindex import SortedList
from pyfalloc.tools.compact.survey import without_collector


def lower_bound(snap):
    """The fractional bound: k_max granules could be freed at all (cheapest first, as long
    as the holes of the granules kept can absorb their live bytes); freeing k granules
    moves at least the sum of the k smallest live counts."""
    cands = snap.candidates()
    free_space = sum(g.free for g in snap.partial())
    k_max, moved = 0, 0
    for g in cands:
        own_holes = g.free
        if moved + g.live > free_space - own_holes:
            break
        moved += g.live
        free_space -= own_holes
        k_max += 1
    return {"k_max": k_max, "bytes_for_k_max": moved}


def cheapest_costs(snap):
    """B_k for every k: the bytes of the k cheapest granules together (B_0 = 0)."""
    out = [0]
    for g in snap.candidates():
        out.append(out[-1] + g.live)
    return out


class HolePool:
    """Holes of the granules that stay, for best fit: the smallest hole a piece fits in."""

    def __init__(self, granules, granule_size):
        self.G = granule_size
        self.by_len = SortedList()
        self.frags = {}                     # granule index -> {(length, physical)}
        self.total = 0
        for g in granules:
            self.add_granule(g)

    def add_granule(self, g):
        for p, n in g.holes:
            self._add(n, p)

    def _add(self, n, p):
        self.by_len.add((n, p))
        self.frags.setdefault(p // self.G, set()).add((n, p))
        self.total += n

    def _remove(self, n, p):
        self.by_len.remove((n, p))
        self.frags[p // self.G].discard((n, p))
        self.total -= n

    def remove_granule(self, g):
        for n, p in list(self.frags.get(g.index, ())):
            self._remove(n, p)

    def take(self, length):
        """Place length bytes: best fit, else split over the largest holes. Returns
        [(physical, length)], or None (nothing taken) when the pool cannot hold it."""
        if length > self.total:
            return None
        out = []
        while length:
            i = self.by_len.bisect_left((length, -1))
            n, p = self.by_len[i] if i < len(self.by_len) else self.by_len[-1]
            self._remove(n, p)
            used = min(n, length)
            out.append((p, used))
            if n > used:
                self._add(n - used, p + used)
            length -= used
        return out


@without_collector
def plan_exact(snap, k, budget=None):
    """The k cheapest granules that the holes of the others can absorb (k as in the bound,
    cut by the budget) are the victims; their pieces go, largest first, into the smallest
    hole they fit in among the granules that stay (split over the largest holes only when
    none fits). Never into a victim, never into a wholly free granule. Returns
    [(granule, moves)] with moves = [(ino, logical, length, target physical)]."""
    victims, spent = [], 0
    for g in snap.candidates()[:k]:
        if budget is not None and spent + g.live > budget:
            break
        victims.append(g)
        spent += g.live
    chosen = {g.index for g in victims}
    pool = HolePool((g for g in snap.partial() if g.index not in chosen), snap.granule)
    moves = {g.index: [] for g in victims}
    pieces = sorted(((length, ino, logical, g.index) for g in victims for ino, logical, _, length in g.pieces),
                    reverse=True)
    for length, ino, logical, gi in pieces:
        spots = pool.take(length)
        if spots is None:           # cannot happen within the bound; drop the granule if it does
            moves.pop(gi, None)
            continue
        off = 0
        for target, n in spots:
            if gi in moves:
                moves[gi].append((ino, logical + off, n, target))
            off += n
    return [(g, moves[g.index]) for g in victims if g.index in moves]
