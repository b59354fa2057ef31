"""config.counters: one increment rule for every counter in the shared cache."""

from __future__ import annotations

from django.core.cache import cache

from config.counters import counter_incr


def test_a_counter_counts_from_one_and_starts_again_once_gone():
    cache.clear()
    assert [counter_incr("t:count", timeout=60) for _ in range(3)] == [1, 2, 3]
    cache.delete("t:count")  # expired
    assert counter_incr("t:count", timeout=60) == 1


def test_a_counter_that_vanishes_before_its_increment_is_made_again(monkeypatch):
    # given a counter that another thread resets right after it is created
    cache.clear()
    add = cache.add
    resets = []

    def add_then_reset(key, *args, **kwargs):
        added = add(key, *args, **kwargs)
        if len(resets) < 2:
            resets.append(cache.delete(key))
        return added

    monkeypatch.setattr(cache, "add", add_then_reset)
    # when it is incremented, then the increment is not lost to an error
    assert counter_incr("t:vanishing", timeout=60) == 1
    assert resets == [True, True]
    monkeypatch.undo()
    assert counter_incr("t:vanishing", timeout=60) == 2


def test_a_counter_adds_many_at_once():
    cache.clear()
    assert counter_incr("t:batch", timeout=None, by=40) == 40
    assert counter_incr("t:batch", timeout=None, by=2) == 42
