"""Django's Redis cache, with one Redis client per connection pool.

Django's RedisCacheClient builds a new `redis.Redis` for every cache operation
(`get_client`), and redis-py's constructor has grown dear (option parsing, a
response-callback table, its observability hooks): 7% of an image-intake
worker's CPU, which makes four cache calls per image (its claim, the per-host
slot), and a share of every circuit-state read (py-spy --gil on
bench/intake_bench.py). A `redis.Redis` is thread-safe over its pool, so one
per pool serves every operation. Behaviour is otherwise Django's own."""

from __future__ import annotations

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient


class RedisCacheClient(DjangoRedisCacheClient):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[object, object] = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(pool)
        if client is None:
            client = self._clients[pool] = self._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient
