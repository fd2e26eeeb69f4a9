"""Find the strings a live object graph contains, to show what a component keeps.

`held_values(root, values)` walks every object that `root` references,
directly or through others, and returns the strings and bytes among them
that contain one of `values` or its base64 form. A test passes the
service's own objects as `root` after some work, so an empty result shows
that no cache, queue, client or closure of the service kept a secret value.

The walk follows what the garbage collector can see: instances, containers,
closures and bound methods. It does not enter modules, classes or function
globals, since those reach every loaded module, the fake API server's store
included. Loggers and their handlers are skipped too: in a test they are
pytest's, and the tests that read log lines check them for values.
"""

from __future__ import annotations

import base64
import gc
import logging
import types
from collections.abc import Collection, Iterator

# Objects the walk does not enter: their referents are the whole process.
_OPAQUE = (
    types.ModuleType,
    type,
    types.FrameType,
    logging.Logger,
    logging.Manager,
    logging.Handler,
)


def held_values(root: object, values: Collection[str]) -> list[str]:
    """Return each string or bytes reachable from `root` that contains a value."""
    needles = [*_forms(values)]
    found = []
    for item in _reachable(root):
        text = item.decode("latin-1") if isinstance(item, bytes | bytearray) else item
        if any(needle in text for needle in needles):
            found.append(text[:80])
    return found


def _forms(values: Collection[str]) -> Iterator[str]:
    """Yield each value as it is and as the API sends it, base64 encoded."""
    for value in values:
        yield value
        yield base64.b64encode(value.encode()).decode()


def _reachable(root: object) -> Iterator[str | bytes | bytearray]:
    seen = {id(root)}
    pending = [root]
    while pending:
        current = pending.pop()
        if isinstance(current, str | bytes | bytearray):
            yield current
            continue
        if isinstance(current, _OPAQUE):
            continue
        for referent in _referents(current):
            if id(referent) not in seen:
                seen.add(id(referent))
                pending.append(referent)


def _referents(current: object) -> list[object]:
    if isinstance(current, types.FunctionType):
        # A closure's cells and defaults are the function's own state.
        cells = [_contents(cell) for cell in current.__closure__ or ()]
        return [*cells, *(current.__defaults__ or ())]
    return list(gc.get_referents(current))


def _contents(cell: types.CellType) -> object:
    try:
        return cell.cell_contents
    except ValueError:
        # A variable the enclosing function has not assigned yet.
        return None
