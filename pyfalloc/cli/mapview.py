"""Granule occupancy pictures: a terminal strip and a PNG."""
from pyfalloc.units import ceil_div

SHADES = " ░▒▓█"
FREE_MARK = "·"


def summarize(used, granule, total):
    """A granule summary (as Volume.granules gives) from per-granule used bytes."""
    sizes = [min(granule, total - i * granule) for i in range(len(used))]
    free = sum(1 for u in used if u == 0)
    full = sum(1 for u, n in zip(used, sizes) if u == n)
    return {"granule": granule, "granules": len(used), "free": free, "partial": len(used) - free - full,
            "full": full, "used_bytes": list(used)}


def cells(used, granule, max_cells):
    """Fill ratios, several granules per cell when there are more granules than cells."""
    per = max(1, ceil_div(len(used), max_cells))
    out = []
    for i in range(0, len(used), per):
        chunk = used[i:i + per]
        out.append(sum(chunk) / (len(chunk) * granule))
    return out, per


def terminal(summary, width=64, max_cells=4096):
    ratios, per = cells(summary["used_bytes"], summary["granule"], max_cells)
    chars = []
    for r in ratios:
        if r == 0:
            chars.append(FREE_MARK)
        elif r >= 1:
            chars.append(SHADES[-1])
        else:
            chars.append(SHADES[min(3, 1 + int(r * 3))])
    lines = ["".join(chars[i:i + width]) for i in range(0, len(chars), width)]
    unit = "granule" if per == 1 else f"{per} granules"
    legend = f"one cell = {unit}; {FREE_MARK} free  ░ <1/3  ▒ <2/3  ▓ partly used  █ full"
    return "\n".join(lines + [legend])


def png(path, summaries, titles, max_cells=65536):
    """One panel per summary (e.g. before and after a defrag), side by side."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(summaries), figsize=(5 * len(summaries), 5), squeeze=False)
    for ax, summary, title in zip(axes[0], summaries, titles):
        ratios, per = cells(summary["used_bytes"], summary["granule"], max_cells)
        side = int(np.ceil(np.sqrt(len(ratios))))
        grid = np.full(side * side, np.nan)
        grid[:len(ratios)] = ratios
        img = ax.imshow(grid.reshape(side, side), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"{title}\n{summary['free']} free / {summary['partial']} partly used / "
                     f"{summary['full']} full", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(img, ax=axes[0].tolist(), shrink=0.8, label="granule fill")
    fig.savefig(path, dpi=100)
    plt.close(fig)
