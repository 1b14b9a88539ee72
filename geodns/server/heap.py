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

_after_full = 0  # the frozen objects the growth is measured from; 0: none yet
_rebase = False  # the next settle measures anew instead (the first reload after a start)


def settle(full: bool = False, start: bool = False) -> bool:
    """Freeze every object there is; then, when asked or when the frozen heap has grown by
    FROZEN_GROWTH since the last full collection, collect in full and freeze again. Whether
    it collected. Counting the frozen objects walks them (a few ms for a large heap): a
    reload calls this while its stand-in answers.

    `start`: the server's own, before its first answer: a full collection, and the growth
    is measured from the first reload on. The configuration the server started with stays
    referenced by the serve command's own settings, beside each new one: after the first
    reload the heap holds one configuration more, for good, which is no growth to collect."""
    global _after_full, _rebase
    gc.freeze()
    frozen = gc.get_freeze_count()
    if _rebase and not (full or start):
        _rebase = False
        _after_full = max(_after_full, frozen)
        log.debug("heap: %d objects frozen, growth measured from here", frozen)
        return False
    if not (full or start or not _after_full or frozen > FROZEN_GROWTH * _after_full):
        log.debug(
            "heap: %d objects frozen (%d after the last full collection)", frozen, _after_full
        )
        return False
    gc.unfreeze()
    found = gc.collect()
    gc.freeze()
    _after_full = gc.get_freeze_count()
    _rebase = start
    log.debug("heap: full collection, %d unreachable, %d objects frozen", found, _after_full)
    return True
