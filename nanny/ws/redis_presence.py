"""Who is in each room, kept in Redis so every process sees every process's members.

One sorted set per room; members "<user_id>:<origin>" scored by when they lapse. A process
re-scores its members every ttl/3, so a crashed process's users lapse within ttl. The scripts
touch many keys at once, which a Redis Cluster would need split by slot."""

from __future__ import annotations

import time
from collections.abc import Iterable

import redis.asyncio as aioredis

_SCRIPT_CHUNK = 1000

# KEYS: presence sets; ARGV: lapse time, key lifetime, then one member per key.
_REFRESH_LUA = """
for i, key in ipairs(KEYS) do
    redis.call('ZADD', key, ARGV[1], ARGV[i + 2])
    redis.call('EXPIRE', key, ARGV[2])
end
return #KEYS
"""

# KEYS: presence sets; ARGV: now. Drops lapsed members, returns the live ones per key.
_ONLINE_LUA = """
local out = {}
for i, key in ipairs(KEYS) do
    redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
    out[i] = redis.call('ZRANGEBYSCORE', key, ARGV[1], '+inf')
end
return out
"""


class RedisPresence:
    """The presence sets of one process (`origin`): its members lapse `ttl` seconds after
    their last refresh."""

    def __init__(self, redis: aioredis.Redis, *, prefix: str, origin: str, ttl: float):
        self._redis = redis
        self._prefix = prefix
        self._origin = origin
        self._ttl = ttl
        self._refresh_script = redis.register_script(_REFRESH_LUA)
        self._online_script = redis.register_script(_ONLINE_LUA)

    def key(self, booking_id: int) -> str:
        return f"{self._prefix}:presence:{booking_id}"

    async def add(self, booking_id: int, user_id: int) -> None:
        await self.refresh([(booking_id, user_id)])

    async def remove(self, booking_id: int, user_id: int) -> None:
        await self._redis.zrem(self.key(booking_id), f"{user_id}:{self._origin}")

    async def refresh(self, entries: Iterable[tuple[int, int]]) -> None:
        until = time.time() + self._ttl
        keep = int(self._ttl * 2) + 1
        keys, members = [], []
        for booking_id, user_id in entries:
            keys.append(self.key(booking_id))
            members.append(f"{user_id}:{self._origin}")
        # One script call per chunk instead of two commands per entry: the refresh of
        # thousands of sockets costs Redis and this process a few round trips.
        for i in range(0, len(keys), _SCRIPT_CHUNK):
            chunk = slice(i, i + _SCRIPT_CHUNK)
            await self._refresh_script(keys=keys[chunk], args=[until, keep, *members[chunk]])

    async def online(self, booking_ids: list[int]) -> dict[int, set[int]]:
        now = time.time()
        online: dict[int, set[int]] = {}
        for i in range(0, len(booking_ids), _SCRIPT_CHUNK):
            chunk = booking_ids[i : i + _SCRIPT_CHUNK]
            keys = [self.key(b) for b in chunk]
            results = await self._online_script(keys=keys, args=[now])
            for booking_id, members in zip(chunk, results, strict=True):
                online[booking_id] = {int(m.split(b":", 1)[0]) for m in members}
        return online
