"""Progress bars: rich on a terminal's stderr, nothing elsewhere (pipes, --json, tests)."""
import contextlib
import sys


@contextlib.contextmanager
def progress(total, label, enabled=True):
    """Yields advance(n=1)."""
    if not enabled or not sys.stderr.isatty():
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import Progress
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n=1: bar.advance(task, n)
