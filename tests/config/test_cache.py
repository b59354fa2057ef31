"""config.cache.RedisCache: Django's Redis cache against a real Redis, with one
client per connection pool instead of one per operation."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from config.cache import RedisCache
from tests.environment import missing


@pytest.fixture
def redis_cache() -> Iterator[RedisCache]:
    url = os.environ.get("REDIS_URL")
    if not url:
        missing("REDIS_URL is not set: no Redis to test the cache against")
    cache = RedisCache(url, {"KEY_PREFIX": f"test-cache-{uuid.uuid4().hex}"})
    keys = ["claim", "counter", "a", "b"]
    yield cache
    cache.delete_many(keys)  # not clear(): that empties the whole Redis database


def test_the_cache_behaves_as_djangos(redis_cache):
    assert redis_cache.add("claim", 1, timeout=30) is True
    assert redis_cache.add("claim", 2, timeout=30) is False
    assert redis_cache.get("claim") == 1
    redis_cache.set("counter", 0, timeout=30)
    assert redis_cache.incr("counter", 3) == 3
    redis_cache.set_many({"a": {"x": [1, 2]}, "b": "text"}, timeout=30)
    assert redis_cache.get_many(["a", "b", "missing"]) == {"a": {"x": [1, 2]}, "b": "text"}
    assert redis_cache.delete("claim") is True
    assert redis_cache.get("claim") is None
    with pytest.raises(ValueError):
        redis_cache.incr("missing")


def test_one_client_serves_every_operation_and_survives_a_dropped_connection(redis_cache):
    redis_cache.set("a", 1, timeout=30)
    client = redis_cache._cache.get_client(write=True)
    assert redis_cache._cache.get_client(write=True) is client

    # the server drops the connection (a Redis restart): the pool reconnects
    client.connection_pool.disconnect()
    assert redis_cache.get("a") == 1
    assert redis_cache._cache.get_client(write=True) is client
