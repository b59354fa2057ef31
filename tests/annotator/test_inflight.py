"""The gate on provider calls in flight per worker process (annotator/inflight.py)."""

from __future__ import annotations

import threading
import time

import pytest

from annotator.inflight import START_LIMIT, InFlightLimit


class Clocks:
    """A wall clock and a CPU clock the test moves by hand."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def finish_calls(self, gate: InFlightLimit, *, count: int, latency: float, cpu: float):
        """`count` calls of `latency` seconds each, `cpu` CPU seconds each."""
        for _ in range(count):
            assert gate.acquire_nowait()
            self.wall += latency
            self.cpu += cpu
            gate.release(latency)


@pytest.mark.parametrize(
    ("latency", "cpu_per_call", "maximum", "limit"),
    [
        (0.18, 0.009, 128, 30),  # fast answers: what keeps the core busy, with headroom
        (2.0, 0.009, 128, 128),  # slow answers: every call thread
        (2.0, 0.009, 8, 8),  # never above ANNOTATOR_CONCURRENCY
        (0.001, 0.05, 128, 4),  # never below the floor ...
        (0.001, 0.05, 2, 2),  # ... unless the maximum is lower
    ],
)
def test_the_limit_is_the_calls_that_keep_the_core_busy(latency, cpu_per_call, maximum, limit):
    gate = InFlightLimit(maximum)

    assert gate.limit_for(latency=latency, cpu_per_call=cpu_per_call) == limit


def test_the_limit_follows_the_calls_that_finished():
    clocks = Clocks()
    gate = InFlightLimit(128, clock=lambda: clocks.wall, cpu_clock=lambda: clocks.cpu)
    assert gate.limit == START_LIMIT

    # a provider answering in 2 s: every thread is worth a call
    clocks.finish_calls(gate, count=20, latency=2.0, cpu=0.009)
    assert gate.limit == 128

    # the provider speeds up to 180 ms: fewer calls keep the core busy
    clocks.finish_calls(gate, count=200, latency=0.18, cpu=0.009)
    assert gate.limit == 30


def test_the_latency_is_the_providers_unloaded_one_not_the_queue():
    clocks = Clocks()
    gate = InFlightLimit(128, clock=lambda: clocks.wall, cpu_clock=lambda: clocks.cpu)

    # most calls fast, a few slow (answers queued behind a busy core, a Retry-After)
    for _ in range(20):
        clocks.finish_calls(gate, count=9, latency=0.18, cpu=0.009)
        clocks.finish_calls(gate, count=1, latency=3.0, cpu=0.009)

    assert gate.limit == 30


def test_no_more_calls_than_the_limit_get_a_place_at_once():
    gate = InFlightLimit(3)
    places = [gate.acquire_nowait() for _ in range(5)]
    assert places == [True, True, True, False, False] and gate.active == 3

    gate.release(0.1)
    assert gate.acquire_nowait() and not gate.acquire_nowait()


def test_places_are_given_and_taken_back_safely_across_threads():
    gate = InFlightLimit(3)
    inside, most = 0, 0
    lock = threading.Lock()

    def caller() -> None:
        nonlocal inside, most
        for _ in range(20):
            while not gate.acquire_nowait():
                time.sleep(0.001)
            with lock:
                inside += 1
                most = max(most, inside)
            time.sleep(0.001)
            with lock:
                inside -= 1
            gate.release(0.001)

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert most == 3 and gate.active == 0


def test_a_round_of_answers_carrying_the_next_rounds_cpu_does_not_halve_the_limit():
    clocks = Clocks()
    gate = InFlightLimit(128, clock=lambda: clocks.wall, cpu_clock=lambda: clocks.cpu)
    clocks.finish_calls(gate, count=40, latency=2.0, cpu=0.009)
    assert gate.limit == 128

    # a second in which a few answers came back while the process sent 100 new calls
    clocks.finish_calls(gate, count=4, latency=0.3, cpu=0.05)
    clocks.wall += 1.0

    assert gate.limit == 128
