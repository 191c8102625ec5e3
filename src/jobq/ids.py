"""UUIDv7 job ids, strictly increasing within a process (RFC 9562 §6.2, method 1).

The 12-bit `rand_a` field holds a counter that restarts from a random value each
millisecond; when it overflows, or the clock steps back, the timestamp is
advanced by one millisecond instead, so ids never go backwards.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_counter = 0
_COUNTER_MAX = 0xFFF


def uuid7() -> uuid.UUID:
    global _last_ms, _counter
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            _last_ms = now_ms
            # Start low in the 12-bit space so many ids fit in one millisecond.
            _counter = int.from_bytes(os.urandom(2), "big") & 0x1FF
        else:
            _counter += 1
            if _counter > _COUNTER_MAX:
                _last_ms += 1
                _counter = 0
        ms, counter = _last_ms, _counter
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= counter << 64
    value |= 0b10 << 62
    value |= rand_b
    return uuid.UUID(int=value)
