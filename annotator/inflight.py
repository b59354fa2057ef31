"""How many provider calls a worker process keeps in flight.

A call is mostly waiting: at 180 ms a call a process needs ~40-60 calls in
flight to keep its core busy (at ~4.5 ms of CPU a call), at 2 s several
hundred. More than the core can serve buys nothing and costs: the threads
contend for the GIL, every call in flight holds its image and request body,
and the answers queue behind each other
(bench/pipeline_bench.py, 2 processes: 100 in flight per process at 180 ms
gave 130 images/s and 452 MB against 143 images/s and 385 MB with 32, while
32 at 2 s gave only 28 images/s; this limit gave 140-143 images/s and
395-410 MB at 180 ms and 70-81 images/s at 2 s from the one default, and
follows the CPU per call down: once calls cost 4.4 ms instead of ~10, 232-269
images/s and 394-402 MB at 180 ms, 84-92 at 2 s). So the limit
follows Little's law: calls in flight = rate x latency, where the rate a
process can reach is 1 / (its CPU seconds per call) and the latency is the
provider's unloaded one (a low percentile of recent calls: under load the
measured latency grows with the queue, which would feed back into a larger
limit). With HEADROOM for what the estimate misses, bounded by
ANNOTATOR_CONCURRENCY (the process's call threads) and MIN_LIMIT.

The estimate is renewed about once a second from the calls that finished, over
at least half the limit's worth of them: answers come in rounds, and a window
holding a few answers but the CPU spent sending the next round would read as
expensive calls and halve the limit for nothing (it did: 32 images/s instead of
40+ at 2 s). The CPU per call is smoothed over windows. Until the first
estimate the limit is START_LIMIT (or ANNOTATOR_CONCURRENCY if lower)."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque

log = logging.getLogger(__name__)

START_LIMIT = 32
MIN_LIMIT = 4
HEADROOM = 1.5
LATENCY_QUANTILE = 0.1  # of the recent calls: the provider's unloaded latency
RECENT_CALLS = 200
UPDATE_EVERY_S = 1.0
MIN_CALLS_PER_UPDATE = 4


class InFlightLimit:
    """The calls in flight of one process: a call starts only when
    `acquire_nowait()` gives it a place, and `release()` reports how long it
    took. The caller queues the calls that find no place (so the process
    never holds more threads, or request bodies, than the limit), and the
    limit adapts as described in the module's docstring. Thread-safe."""

    def __init__(self, maximum: int, *, clock=time.monotonic, cpu_clock=time.process_time):
        self.maximum = max(1, maximum)
        self.limit = min(self.maximum, START_LIMIT)
        self.active = 0
        self._clock, self._cpu_clock = clock, cpu_clock
        self._lock = threading.Lock()
        self._latencies: deque[float] = deque(maxlen=RECENT_CALLS)
        self._finished = 0
        self._window = (clock(), cpu_clock(), 0)  # (wall, cpu, finished) at the last update
        self._cpu_per_call: float | None = None

    def acquire_nowait(self) -> bool:
        with self._lock:
            if self.active >= self.limit:
                return False
            self.active += 1
            return True

    def release(self, latency: float) -> None:
        with self._lock:
            self.active -= 1
            self._finished += 1
            self._latencies.append(latency)
            now = self._clock()
            wall, cpu, finished = self._window
            calls = self._finished - finished
            if now - wall >= UPDATE_EVERY_S and calls >= max(MIN_CALLS_PER_UPDATE, self.limit // 2):
                spent = self._cpu_clock()
                measured = (spent - cpu) / calls
                previous = self._cpu_per_call
                self._cpu_per_call = measured if previous is None else (previous + measured) / 2
                self._window = (now, spent, self._finished)
                self._limit_set(
                    self.limit_for(
                        latency=_quantile(self._latencies, LATENCY_QUANTILE),
                        cpu_per_call=self._cpu_per_call,
                    )
                )

    def _limit_set(self, limit: int) -> None:
        if limit != self.limit:
            log.info(
                "calls in flight: %s -> %s (provider latency %.2f s, %.1f ms CPU a call)",
                self.limit,
                limit,
                _quantile(self._latencies, LATENCY_QUANTILE),
                (self._cpu_per_call or 0) * 1000,
            )
        self.limit = limit

    def limit_for(self, *, latency: float, cpu_per_call: float) -> int:
        if cpu_per_call <= 0:
            return self.maximum
        wanted = math.ceil(HEADROOM * latency / cpu_per_call - 1e-9)  # 30.000000000000004 is 30
        return max(min(MIN_LIMIT, self.maximum), min(self.maximum, wanted))


def _quantile(values: deque[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
