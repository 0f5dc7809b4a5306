"""The Redis backend: ``Hub("redis://host:port/db")`` fans out across processes and hosts.

Publishing: the publisher encodes the message once per wire kind and sends
one PUBLISH to the room's channel, ``{key_prefix}:room:{name}``, carrying an
envelope with those frames; every other process hands the same bytes to its
members. The publisher's own process delivers to its members directly (and
skips its own message when Redis echoes it back), so local members are served
even while Redis is away.

One channel per room, not one pattern for all rooms: Redis then routes a
message only to the processes that have members in its room, where a
``PSUBSCRIBE {key_prefix}:room:*`` would send every room's traffic to every
process, to be decoded and dropped by most of them. The cost, a SUBSCRIBE
when a room gets its first member here and an UNSUBSCRIBE when its last one
leaves, is batched: many joins and leaves make one round trip. It also
makes subscriptions visible to ``PUBSUB NUMSUB`` / ``PUBSUB CHANNELS``.

Counting: each process keeps its member count per room in the hash
``{key_prefix}:members:{name}`` (field: the process id), and refreshes a
key ``{key_prefix}:process:{id}`` that expires after three heartbeats. A
cluster-wide count adds the fields of live processes and deletes those of
dead ones, so a crashed process's members expire on their own.

Trouble: a lost connection is logged, local delivery goes on, ``publish``
and ``count`` raise :class:`BackendUnavailable` at once (or within
``backend_timeout`` when Redis stops answering), and the hub reconnects with
exponential backoff, then re-subscribes every room that still has members
and re-writes its counts, logging each step. Messages published elsewhere
while the connection was down are lost for this process: Redis pub/sub
keeps nothing for absent subscribers.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import struct
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .backend import Frames, Receive
from .errors import BackendUnavailable, redact

__all__ = ["RedisBackend", "redact"]

_FIRST_DELAY = 0.05  # seconds before the first reconnection attempt
_MAX_DELAY = 2.0  # longest wait between attempts

# Envelope: magic, publisher id (16 bytes), then per frame: kind (j/p),
# frame type (t: text, b: binary), payload length, payload.
_MAGIC = b"wsc1"
_ID_END = len(_MAGIC) + 16
_SECTION = struct.Struct(">ccI")
_TEXT = b"t"
_BINARY = b"b"
_JSON = b"j"
_PLAIN = b"p"

_TROUBLE = (RedisError, OSError, TimeoutError)


def _describe(error: BaseException, timeout: float) -> str:
    if isinstance(error, TimeoutError) and not str(error):
        return f"no answer within {timeout} s"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _backoff(attempt: int) -> float:
    """Seconds to wait before reconnection attempt ``attempt + 1``."""
    return min(_MAX_DELAY, _FIRST_DELAY * 2.0 ** min(attempt, 16))


def _envelope(origin: bytes, frames: Frames) -> bytes:
    """The published bytes: every kind's frame, as encoded once by the publisher."""
    parts = [_MAGIC, origin]
    for kind, frame in ((_JSON, frames.json), (_PLAIN, frames.plain)):
        if frame is None:
            continue
        if isinstance(frame, str):
            payload = frame.encode()
            parts.append(_SECTION.pack(kind, _TEXT, len(payload)))
        else:
            payload = bytes(frame)
            parts.append(_SECTION.pack(kind, _BINARY, len(payload)))
        parts.append(payload)
    return b"".join(parts)


def _open_envelope(data: bytes) -> Frames:
    """The frames in an envelope. Raises ``ValueError`` for anything else."""
    if data[: len(_MAGIC)] != _MAGIC:
        raise ValueError("not a wschannels message")
    position = _ID_END
    end = len(data)
    found: dict[bytes, str | bytes] = {}
    while position < end:
        try:
            kind, frame_type, length = _SECTION.unpack_from(data, position)
        except struct.error:
            raise ValueError("truncated wschannels message") from None
        position += _SECTION.size
        payload = data[position : position + length]
        if len(payload) != length or kind not in (_JSON, _PLAIN):
            raise ValueError("malformed wschannels message")
        position += length
        found[kind] = payload.decode() if frame_type == _TEXT else payload
    return Frames(found.get(_JSON), found.get(_PLAIN))


class RedisBackend:
    """Fan-out and counts through Redis; see the module docstring for the design."""

    name = "redis"
    remote = True

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str,
        timeout: float,
        heartbeat_interval: float,
        logger: logging.Logger,
    ) -> None:
        self.url = redact(url)
        try:
            parse_url(url)
        except ValueError as error:
            raise ValueError(f"invalid Redis URL {self.url!r}: {error}") from None
        if not isinstance(key_prefix, str) or not key_prefix:
            raise ValueError(f"key_prefix must be a non-empty str, got {key_prefix!r}")
        self._url = url
        self._timeout = timeout
        self._heartbeat = heartbeat_interval
        self._ttl_ms = max(1, round(heartbeat_interval * 3 * 1000))
        self._log = logger
        self._id = secrets.token_hex(8).encode()
        self._channel_prefix = f"{key_prefix}:room:"
        self._channel_prefix_length = len(self._channel_prefix.encode())
        self._count_prefix = f"{key_prefix}:members:"
        self._process_prefix = f"{key_prefix}:process:"
        self._process_key = self._process_prefix + self._id.decode()
        self._client: Redis | None = None
        self._pubsub: PubSub | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._receive: Receive | None = None
        self._members: dict[str, int] = {}  # rooms with members here -> how many
        self._dirty: set[str] = set()  # rooms whose count or subscription is not yet in Redis
        self._counted: set[str] = set()  # rooms whose hash holds a count of ours
        self._subscribed: set[str] = set()  # rooms subscribed on the current connection
        self._acks: dict[str, asyncio.Future[None]] = {}
        self._wake = asyncio.Event()
        self._batch: asyncio.Future[None] | None = None
        self._resubscribing = False
        self._last_pong = 0.0
        self.connected = False
        self.received = 0
        self.reconnects = 0
        self.failures = 0

    @property
    def subscriptions(self) -> int:
        return len(self._subscribed)

    # -- lifecycle ------------------------------------------------------------------

    async def start(self, receive: Receive) -> None:
        loop = asyncio.get_running_loop()
        self._receive = receive
        self._batch = loop.create_future()
        self._wake = asyncio.Event()
        self._client = Redis.from_url(
            self._url,
            socket_connect_timeout=self._timeout,
            socket_timeout=self._timeout,
            # Reconnection is ours, with backoff and a log line per step: redis-py
            # retrying under us would hide the trouble and stretch every timeout.
            retry=Retry(NoBackoff(), 0),
        )
        try:
            pubsub = await self._open()
        except _TROUBLE as error:
            await self._close_client()
            raise BackendUnavailable(
                f"cannot connect to Redis at {self.url}: {_describe(error, self._timeout)}"
            ) from error
        self.connected = True
        self._log.info("hub connected to Redis at %s", self.url)
        self._supervisor = loop.create_task(self._supervise(pubsub), name="wschannels-hub-redis")

    async def stop(self) -> None:
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            try:
                await supervisor
            except asyncio.CancelledError:
                pass
        client = self._client
        if client is not None and self.connected:
            try:
                async with asyncio.timeout(self._timeout):
                    pipe = client.pipeline(transaction=False)
                    for room in self._counted:
                        pipe.hdel(self._count_prefix + room, self._id)
                    pipe.delete(self._process_key)
                    await pipe.execute()
            except _TROUBLE as error:
                self._log.warning(
                    "could not withdraw this process's members from Redis at %s (%s); "
                    "they drop out of counts within %.1f s",
                    self.url,
                    _describe(error, self._timeout),
                    self._ttl_ms / 1000,
                )
        await self._close_pubsub()
        await self._close_client()
        if self.connected:
            self._log.info("hub disconnected from Redis at %s", self.url)
        self.connected = False
        self._members.clear()
        self._dirty.clear()
        self._counted.clear()
        self._subscribed.clear()
        self._finish_batch()

    async def _open(self) -> PubSub:
        """Register this process and open the subscription connection."""
        client = self._client
        assert client is not None
        async with asyncio.timeout(self._timeout):
            await client.set(self._process_key, b"1", px=self._ttl_ms)
            pubsub = client.pubsub()
            try:
                await pubsub.connect()  # type: ignore[no-untyped-call]
            except BaseException:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                raise
        self._pubsub = pubsub
        return pubsub

    async def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                async with asyncio.timeout(self._timeout):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            except _TROUBLE as error:
                self._log.debug("closing the subscription connection: %r", error)

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                async with asyncio.timeout(self._timeout):
                    await client.aclose()
            except _TROUBLE as error:
                self._log.debug("closing the Redis client: %r", error)

    async def _drop_pooled_connections(self) -> None:
        """Close every pooled connection: after an outage they may all be dead."""
        client = self._client
        if client is not None:
            try:
                async with asyncio.timeout(self._timeout):
                    await client.connection_pool.disconnect()
            except _TROUBLE as error:
                self._log.debug("closing pooled Redis connections: %r", error)

    def _finish_batch(self) -> None:
        """Release everyone waiting in :meth:`synced` (the connection is gone or closing)."""
        batch = self._batch
        if batch is not None and not batch.done():
            batch.set_result(None)
        self._batch = asyncio.get_running_loop().create_future() if self._client else None

    # -- the connection's life: serve, lose, reconnect ----------------------------------

    async def _supervise(self, pubsub: PubSub) -> None:
        while True:
            try:
                await self._serve(pubsub)
                error: BaseException = ConnectionError("the subscription ended")
            except _TROUBLE as trouble:
                error = trouble
            except Exception as bug:  # keep the hub alive, but say loudly what happened
                self._log.error("hub Redis session failed", exc_info=True)
                error = bug
            self.connected = False
            self._subscribed.clear()
            self._acks.clear()
            self._finish_batch()
            if isinstance(error.__context__, _TROUBLE):
                error = error.__context__  # what broke, not redis-py's failed retry on top
            self._log.warning(
                "hub lost Redis at %s (%s): members here still get this process's "
                "publishes; reconnecting",
                self.url,
                _describe(error, self._timeout),
            )
            await self._close_pubsub()
            await self._drop_pooled_connections()
            pubsub = await self._reconnect()

    async def _reconnect(self) -> PubSub:
        """Try again and again, waiting twice as long each time (with jitter), up to a cap."""
        attempt = 0
        while True:
            await asyncio.sleep(_backoff(attempt) * random.uniform(0.5, 1.0))
            attempt += 1
            try:
                pubsub = await self._open()
            except _TROUBLE as error:
                self._log.warning(
                    "hub: Redis at %s still unreachable (attempt %d: %s); retrying in up to %.2f s",
                    self.url,
                    attempt,
                    _describe(error, self._timeout),
                    _backoff(attempt),
                )
                continue
            self.reconnects += 1
            self.connected = True
            self._resubscribing = True
            self._log.warning(
                "hub reconnected to Redis at %s (attempt %d); re-subscribing %d rooms",
                self.url,
                attempt,
                len(self._members),
            )
            return pubsub

    async def _serve(self, pubsub: PubSub) -> None:
        """Read, sync and heartbeat on one connection until one of them fails."""
        loop = asyncio.get_running_loop()
        self._subscribed.clear()
        self._last_pong = loop.time()
        # A new connection has no subscriptions, and Redis may have restarted empty.
        self._dirty.update(self._members)
        self._dirty.update(self._counted)
        self._wake.set()
        tasks = [
            loop.create_task(self._read(pubsub)),
            loop.create_task(self._sync(pubsub)),
            loop.create_task(self._beat(pubsub)),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error

    async def _read(self, pubsub: PubSub) -> None:
        """Deliver messages from other processes; note subscription acks and pongs."""
        receive = self._receive
        assert receive is not None
        loop = asyncio.get_running_loop()
        own = self._id
        skip = self._channel_prefix_length
        while True:
            message: dict[str, Any] | None = await pubsub.get_message(timeout=None)
            if message is None:
                continue
            kind = message["type"]
            if kind == "message":
                data: bytes = message["data"]
                if data[len(_MAGIC) : _ID_END] == own:
                    continue  # our own publish: delivered here already
                try:
                    frames = _open_envelope(data)
                except ValueError as error:
                    self._log.warning("hub: ignored a message on %r: %s", message["channel"], error)
                    continue
                self.received += 1
                room = message["channel"][skip:].decode()
                try:
                    pending = receive(room, frames)
                    if pending is not None:
                        await pending
                except Exception:
                    self._log.error("hub: delivering to room %r failed", room, exc_info=True)
            elif kind == "subscribe":
                ack = self._acks.pop(message["channel"][skip:].decode(), None)
                if ack is not None and not ack.done():
                    ack.set_result(None)
            elif kind == "pong":
                self._last_pong = loop.time()

    async def _sync(self, pubsub: PubSub) -> None:
        """Bring Redis in line with this process's rooms, a batch of changes at a time."""
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            batch, self._batch = self._batch, loop.create_future()
            try:
                await self._apply(pubsub, dirty)
            except BaseException:
                self._dirty |= dirty
                raise
            finally:
                if batch is not None and not batch.done():
                    batch.set_result(None)
            if self._resubscribing and not self._dirty:
                self._resubscribing = False
                self._log.warning(
                    "hub re-subscribed %d rooms on Redis at %s", len(self._subscribed), self.url
                )

    async def _apply(self, pubsub: PubSub, dirty: set[str]) -> None:
        if not dirty:
            return
        client = self._client
        assert client is not None
        members = self._members
        async with asyncio.timeout(self._timeout):
            pipe = client.pipeline(transaction=False)
            for room in dirty:
                count = members.get(room, 0)
                if count:
                    pipe.hset(self._count_prefix + room, self._id, count)
                else:
                    pipe.hdel(self._count_prefix + room, self._id)
            await pipe.execute()
            for room in dirty:
                if room in members:
                    self._counted.add(room)
                else:
                    self._counted.discard(room)
            prefix = self._channel_prefix
            leaving = [room for room in dirty if room not in members and room in self._subscribed]
            if leaving:
                await pubsub.unsubscribe(*(prefix + room for room in leaving))
                self._subscribed.difference_update(leaving)
            joining = [room for room in dirty if room in members and room not in self._subscribed]
            if joining:
                loop = asyncio.get_running_loop()
                acks = []
                for room in joining:
                    ack = self._acks[room] = loop.create_future()
                    acks.append(ack)
                await pubsub.subscribe(*(prefix + room for room in joining))
                self._subscribed.update(joining)
                # Once Redis acknowledged, a publish from anywhere reaches us.
                await asyncio.gather(*acks)

    async def _beat(self, pubsub: PubSub) -> None:
        """Keep this process alive in Redis, and notice a connection that went silent."""
        client = self._client
        assert client is not None
        loop = asyncio.get_running_loop()
        silence = 2 * self._heartbeat + self._timeout
        while True:
            await asyncio.sleep(self._heartbeat)
            async with asyncio.timeout(self._timeout):
                await client.set(self._process_key, b"1", px=self._ttl_ms)
                await pubsub.ping()
            if loop.time() - self._last_pong > silence:
                raise ConnectionError(
                    f"no answer on the subscription connection for {silence:.1f} s"
                )

    # -- what the hub asks --------------------------------------------------------------

    def room_changed(self, room: str, members: int) -> None:
        if members:
            self._members[room] = members
        else:
            self._members.pop(room, None)
        self._dirty.add(room)
        self._wake.set()

    async def synced(self) -> None:
        batch = self._batch
        if not self.connected or batch is None:
            return
        try:
            async with asyncio.timeout(self._timeout):
                await asyncio.shield(batch)
        except TimeoutError:
            self._log.warning(
                "hub: Redis at %s did not confirm room changes within %s s; they apply "
                "when it answers",
                self.url,
                self._timeout,
            )

    async def publish(self, room: str, frames: Frames) -> None:
        client = self._client
        if not self.connected or client is None:
            self.failures += 1
            raise BackendUnavailable(
                f"Redis at {self.url} is unreachable (the hub is reconnecting): the message "
                f"to room {room!r} reached this process's members only"
            )
        try:
            async with asyncio.timeout(self._timeout):
                await client.publish(self._channel_prefix + room, _envelope(self._id, frames))
        except _TROUBLE as error:
            self.failures += 1
            raise BackendUnavailable(
                f"publishing to room {room!r} through Redis at {self.url} failed "
                f"({_describe(error, self._timeout)}): it reached this process's members only"
            ) from error

    async def count(self, room: str, local: int) -> int:
        client = self._client
        if not self.connected or client is None:
            self.failures += 1
            raise BackendUnavailable(
                f"Redis at {self.url} is unreachable (the hub is reconnecting): "
                f"cannot count the members of room {room!r}"
            )
        key = self._count_prefix + room
        total = local  # our own count is exact here, and may be ahead of Redis
        try:
            async with asyncio.timeout(self._timeout):
                counts: dict[Any, Any] = await client.hgetall(key)
                others = [(pid, int(n)) for pid, n in counts.items() if pid != self._id]
                if others:
                    alive = await client.mget(
                        [self._process_prefix + pid.decode() for pid, _ in others]
                    )
                    dead = []
                    for (pid, count), flag in zip(others, alive, strict=True):
                        if flag is None:
                            dead.append(pid)
                        else:
                            total += count
                    if dead:
                        await client.hdel(key, *dead)
        except _TROUBLE as error:
            self.failures += 1
            raise BackendUnavailable(
                f"counting the members of room {room!r} through Redis at {self.url} failed "
                f"({_describe(error, self._timeout)})"
            ) from error
        return total
