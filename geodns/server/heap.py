"""The heap across reloads: a configuration's objects are frozen out of the cyclic garbage
collector's sight, and a full collection runs only when the frozen heap has grown.

A zone of 10,000 records is some 50,000 objects that live until the next reload. Left to the
collector, they would be walked by every full collection (60-100 ms each, with the loop
stopped), and a full collection follows soon after a reload has made that many objects. A
full collection inside the reload instead (while the stand-in answers) costs 0.13 s of the
reload's second. Frozen (`gc.freeze()`), they are never walked; a replaced configuration is
freed by reference counting alone, since nothing in it is a reference cycle
(tests/unit/server/test_heap.py holds the Answerer and its zones to that). What reference
cycles were garbage when the heap was frozen stay until the next full collection, which
runs when the frozen heap has grown by FROZEN_GROWTH since the last one: the leak is
bounded, and a reload of the same configuration never pays for a collection.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger("geodns.server")
FROZEN_GROWTH = 1.25  # a full collection once the frozen objects are this many times more

_after_full = 0  # objects frozen right after the last full collection; 0: none yet


def settle(full: bool = False) -> bool:
    """Freeze every object there is; then, when asked or when the frozen heap has grown by
    FROZEN_GROWTH since the last full collection, collect in full and freeze again. Whether
    it collected. Counting the frozen objects walks them (a few ms for a large heap): a
    reload calls this while its stand-in answers."""
    global _after_full
    gc.freeze()
    frozen = gc.get_freeze_count()
    if not (full or not _after_full or frozen > FROZEN_GROWTH * _after_full):
        log.debug(
            "heap: %d objects frozen (%d after the last full collection)", frozen, _after_full
        )
        return False
    gc.unfreeze()
    found = gc.collect()
    gc.freeze()
    _after_full = gc.get_freeze_count()
    log.debug("heap: full collection, %d unreachable, %d objects frozen", found, _after_full)
    return True
