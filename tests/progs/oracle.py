"""What the oracle programs print for one call: its result, or the errno's name, on a line
a run on the host and a run on the image can be compared by."""
import errno


def show(name, fn):
    try:
        r = fn()
        print(f"{name}: {r!r}")
    except OSError as e:
        print(f"{name}: {errno.errorcode[e.errno]}")
