"""The plan: the fractional bound on what can be freed and what it must move, and the exact
strategy's choice of victims and holes."""
from heapq import heappop, heappush

from pyfalloc.collector import without_collector


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
    """Holes of the granules that stay, for best fit: the smallest hole a piece fits in, the
    lowest address among holes of that length. A hole is no longer than a granule, so the
    lengths (in blocks) are few: a heap of addresses per length and a bit per length that
    has holes make a best fit a shift and a lowest-bit test."""

    def __init__(self, granules, granule_size, block):
        self.block = block
        self.heaps = [[] for _ in range(granule_size // block + 1)]
        self.mask = 0                       # bit b: some hole is b blocks long
        self.total = 0
        for g in granules:
            for p, n in g.holes:
                self._add(n, p)

    def _add(self, n, p):
        b = n // self.block
        heappush(self.heaps[b], p)
        self.mask |= 1 << b
        self.total += n

    def _pop(self, b):
        """The lowest address of the holes b blocks long."""
        heap = self.heaps[b]
        p = heappop(heap)
        if not heap:
            self.mask &= ~(1 << b)
        self.total -= b * self.block
        return p

    def take(self, length):
        """Place length bytes: best fit, else split over the largest holes. Returns
        [(physical, length)], or None (nothing taken) when the pool cannot hold it."""
        if length > self.total:
            return None
        out = []
        while length:
            need = -(-length // self.block)
            fits = self.mask >> need
            # the shortest hole that holds it all, else the longest (and the piece is split)
            b = need + (fits & -fits).bit_length() - 1 if fits else self.mask.bit_length() - 1
            p = self._pop(b)
            n = b * self.block
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
    pool = HolePool((g for g in snap.partial() if g.index not in chosen), snap.granule, snap.block)
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
