"""glibc's allocator, tuned for a worker process with many call threads.

A worker process keeps up to ANNOTATOR_CONCURRENCY provider calls in flight on
threads, each holding an image, a request body and a read buffer for as long
as its call waits. Two things keep that memory resident after the calls end
(bench/pipeline_bench.py and a one-process experiment at 128 calls in flight,
2 s a call): glibc gives threads up to 8 malloc arenas per core, and the holes
the 60-90 KB buffers leave in an arena's heap are not returned to the system
until something asks. Both are no-ops off glibc."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import threading
import time

M_ARENA_MAX = -8  # glibc's mallopt parameter
TRIM_EVERY_S = 2.0


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def malloc_arenas_limit(arenas: int = 2) -> None:
    """Two arenas cost no measurable speed and save ~12 MB per worker process
    (bench/pipeline_bench.py, MALLOC_ARENA_MAX=2 against the default). Same as
    the MALLOC_ARENA_MAX environment variable, which wins when set.

    Not done: a fixed 64 KB mmap threshold (MALLOC_MMAP_THRESHOLD_=65536) saved
    another ~7 MB per process but cost 1.8 ms CPU per image annotated and 8 ms
    per image taken in (every buffer mapped and zeroed afresh): measured against
    glibc's default in the same session."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is not None and not os.environ.get("MALLOC_ARENA_MAX"):
        mallopt(M_ARENA_MAX, arenas)


_trimmed_at = 0.0
_trim_lock = threading.Lock()


def malloc_trim_now_and_then() -> None:
    """Give the free pages inside the heap back to the system, at most every
    TRIM_EVERY_S per process (one call walks the heap: ~2 ms with 128 call
    threads). Called by the annotation chunk's loop: at 128 calls in flight it
    kept ~10 MB less resident per process (49.5 against 59.0 MB over the
    process's idle size, same experiment, one run each)."""
    global _trimmed_at
    now = time.monotonic()
    if now - _trimmed_at < TRIM_EVERY_S or not _trim_lock.acquire(blocking=False):
        return
    try:
        _trimmed_at = now
        trim = getattr(_libc(), "malloc_trim", None)
        if trim is not None:
            trim(0)
    finally:
        _trim_lock.release()
