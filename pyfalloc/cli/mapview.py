"""Granule occupancy pictures: a terminal strip and a PNG."""
from pyfalloc.units import ceil_div, format_size

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


FREE_RGB = (0.93, 0.93, 0.93)
FULL_RGB = (0.12, 0.29, 0.60)
PARTIAL_LOW, PARTIAL_HIGH = (1.0, 0.85, 0.35), (0.85, 0.25, 0.05)     # nearly empty .. nearly full


def _colour(ratio):
    if ratio <= 0:
        return FREE_RGB
    if ratio >= 1:
        return FULL_RGB
    return tuple(lo + (hi - lo) * ratio for lo, hi in zip(PARTIAL_LOW, PARTIAL_HIGH))


def _tick_step(span):
    """A power of two of bytes giving four to eight ticks."""
    step = 1
    while span / step > 8:
        step *= 2
    return step


def _bytes_label(value):
    for shift, suffix in ((40, "T"), (30, "G"), (20, "M"), (10, "K")):
        if value >= 1 << shift:
            return f"{value / (1 << shift):.3g}{suffix}"
    return f"{value:.0f}"


def png(path, summaries, titles, max_cells=65536):
    """One panel per summary (e.g. before and after a defrag), side by side: the device
    laid out in rows, row starts and offsets within a row on the axes as device bytes;
    free, partly used (shaded by how full) and full granules in distinct colours."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    fig, axes = plt.subplots(1, len(summaries), figsize=(max(7.0, 5.5 * len(summaries)), 6.0), squeeze=False)
    for ax, summary, title in zip(axes[0], summaries, titles):
        ratios, per = cells(summary["used_bytes"], summary["granule"], max_cells)
        cell_bytes = per * summary["granule"]
        width = max(1, int(np.ceil(np.sqrt(len(ratios)))))
        rows = -(-len(ratios) // width)
        rgb = np.ones((rows * width, 3))
        rgb[:len(ratios)] = [_colour(r) for r in ratios]
        ax.imshow(rgb.reshape(rows, width, 3), interpolation="nearest", aspect="auto",
                  extent=(0, width * cell_bytes, rows * width * cell_bytes, 0))
        for axis, span in ((ax.xaxis, width * cell_bytes), (ax.yaxis, rows * width * cell_bytes)):
            axis.set_major_locator(MultipleLocator(_tick_step(span)))
            axis.set_major_formatter(FuncFormatter(lambda v, _: _bytes_label(v)))
        ax.set_xlabel("offset within the row (device bytes)")
        ax.set_ylabel("row start (device offset)")
        unit = "granule" if per == 1 else f"{per} granules"
        ax.set_title(f"{title}\n{summary['free']} free / {summary['partial']} partly used / "
                     f"{summary['full']} full; a cell is {unit} of {format_size(summary['granule'])}", fontsize=9)
    handles = [Patch(color=FREE_RGB, label="free (can be discarded)"),
               Patch(color=_colour(0.1), label="partly used, nearly empty"),
               Patch(color=_colour(0.9), label="partly used, nearly full"),
               Patch(color=FULL_RGB, label="full")]
    fig.legend(handles=handles, loc="lower center", ncol=2 if len(summaries) == 1 else 4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
