"""The Redis backends: ``Hub("redis://host:port/db")``, and ``Hub("redis+cluster://host:port")``.

Every key and channel of a room shares one hash tag, ``{key_prefix}:{room}``,
so on a Redis Cluster a room lives on one shard: its channel
(``...:messages``), its members (``...:members``), and its history
(``...:history``, a stream, and ``...:meta``, its offset and epoch).

Publishing: the publisher encodes the message once per wire kind; the hub's
outbox task sends it with PUBLISH (SPUBLISH on a cluster, sharded pub/sub: a
room's traffic stays on its shard instead of going to every node), many
messages per round trip. In a room with history, one Lua script takes the next
offset, appends the message to the stream (XADD, trimmed by MAXLEN and, with a
TTL, MINID) and publishes it with its position: atomic, so the history and
the live messages agree on every position. The publisher's own process
delivers messages without history to its members directly (and skips its own
message when Redis echoes it back), so local members are served even while
Redis is away; messages with history come back to every process in Redis'
order.

One channel per room, not one pattern for all rooms: Redis then routes a
message only to the processes that have members in its room. The cost, a
SUBSCRIBE when a room gets its first member here and an UNSUBSCRIBE when its
last one leaves, is batched: many joins and leaves make one round trip.

Presence: each member of a room is a field of the room's hash
``...:members`` (``{process id}:{member id}`` -> its info as JSON), and each
process refreshes a key ``{key_prefix}:process:{id}`` that expires after
three heartbeats. Reading presence drops the fields of processes whose key
expired, so a crashed process's members leave on their own. A change is
announced on the room's channel, so the processes with members there look
again at once.

Trouble: a lost connection (also one killed by the server, e.g. ``CLIENT KILL
TYPE pubsub`` or an output-buffer limit) is logged, local delivery goes on,
``publish`` raises :class:`BackendUnavailable` at once, and the hub reconnects
with exponential backoff, then re-subscribes every room that still has
members and re-writes its presence, logging each step. A connection that
stops answering is found by the heartbeat's PING. Messages without history
published elsewhere while the connection was down are lost for this process:
Redis pub/sub keeps nothing for absent subscribers.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import struct
from typing import Any

import msgspec
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.client import PubSub
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .backend import Entry, Frames, Outgoing, PresenceChanged, Receive, SharedBackend, describe
from .errors import BackendUnavailable, redact
from .positions import Position, new_epoch

__all__ = ["RedisBackend", "redact"]

_FIRST_DELAY = 0.05  # seconds before the first reconnection attempt
_MAX_DELAY = 2.0  # longest wait between attempts
_IDLE_HISTORY_MS = 7 * 24 * 3600 * 1000  # a room's history and offset outlive it idle this long

# Envelope: magic, publisher id (16 bytes), excluded member id (16 hex digits),
# then per frame: kind (j/p), frame type (t: text, b: binary), payload length, payload.
_MAGIC = b"wsc1"
_ID_END = len(_MAGIC) + 16
_HEADER_END = _ID_END + 16
_SECTION = struct.Struct(">ccI")
_TEXT = b"t"
_BINARY = b"b"
_JSON = b"j"
_PLAIN = b"p"
# A message with history: b"wsh1" OFFSET "," EPOCH "," envelope.
_POSITIONED = b"wsh1"
# A presence change: b"wsp1" publisher id.
_PRESENCE = b"wsp1"

_TROUBLE = (RedisError, OSError, TimeoutError)

_PUBLISH = """
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[4]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], '*', 'o', offset, 'd', ARGV[1])
if ARGV[3] ~= '0' then
  local now = redis.call('TIME')
  local oldest = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[3])
  redis.call('XTRIM', KEYS[2], 'MINID', string.format('%d', oldest))
end
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call(ARGV[6], KEYS[3], 'wsh1' .. offset .. ',' .. epoch .. ',' .. ARGV[1])
return {offset, epoch}
"""

_HISTORY = """
if ARGV[1] ~= '0' then
  local now = redis.call('TIME')
  local oldest = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[1])
  redis.call('XTRIM', KEYS[2], 'MINID', string.format('%d', oldest))
end
return {redis.call('HMGET', KEYS[1], 'offset', 'epoch'), redis.call('XRANGE', KEYS[2], '-', '+')}
"""


def _backoff(attempt: int) -> float:
    """Seconds to wait before reconnection attempt ``attempt + 1``."""
    return min(_MAX_DELAY, _FIRST_DELAY * 2.0 ** min(attempt, 16))


def _room_tag(room: str) -> str:
    """The room as it appears inside a key's hash tag: braces would break the tag, so hex."""
    if "{" in room or "}" in room or room.startswith("~"):
        return "~" + room.encode().hex()
    return room


def _room_of_tag(tag: str) -> str:
    return bytes.fromhex(tag[1:]).decode() if tag.startswith("~") else tag


def envelope(origin: bytes, excluded: int, frames: Frames) -> bytes:
    """The published bytes: every kind's frame, as encoded once by the publisher."""
    parts = [_MAGIC, origin, b"%016x" % excluded]
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


def open_envelope(data: bytes) -> tuple[bytes, int, Frames]:
    """The publisher, excluded member and frames of an envelope; ``ValueError`` if not one."""
    if data[: len(_MAGIC)] != _MAGIC or len(data) < _HEADER_END:
        raise ValueError("not a wschannels message")
    try:
        excluded = int(data[_ID_END:_HEADER_END], 16)
    except ValueError:
        raise ValueError("malformed wschannels message") from None
    position = _HEADER_END
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
        try:
            found[kind] = payload.decode() if frame_type == _TEXT else payload
        except UnicodeDecodeError:
            raise ValueError("malformed wschannels message (text not UTF-8)") from None
    return data[len(_MAGIC) : _ID_END], excluded, Frames(found.get(_JSON), found.get(_PLAIN))


def open_positioned(data: bytes) -> tuple[Position, bytes]:
    """The position and envelope of a message with history; ``ValueError`` for anything else."""
    try:
        offset, epoch, rest = data[len(_POSITIONED) :].split(b",", 2)
        return Position(int(offset), epoch.decode()), rest
    except (ValueError, UnicodeDecodeError):
        raise ValueError("malformed wschannels message (position)") from None


class _Subscriber:
    """One pub/sub connection: to the Redis server, or to one shard of a cluster."""

    __slots__ = ("client", "last_pong", "name", "pubsub", "rooms")

    def __init__(self, name: str, pubsub: PubSub, client: Redis | None, now: float) -> None:
        self.name = name
        self.pubsub = pubsub
        self.client = client  # a connection of its own (cluster shards), closed with it
        self.rooms: set[str] = set()
        self.last_pong = now


class RedisBackend(SharedBackend):
    """Fan-out, presence and history through Redis; see the module docstring for the design."""

    remote = True
    server = "Redis"

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str,
        timeout: float,
        heartbeat_interval: float,
        history_size: int,
        history_ttl: float | None,
        logger: logging.Logger,
    ) -> None:
        self.url = redact(url)
        scheme, _, rest = url.partition("://")
        self._cluster = scheme.lower().endswith("+cluster")
        self._redis_url = f"{scheme.lower().removesuffix('+cluster')}://{rest}"
        try:
            self._connection_kwargs = parse_url(self._redis_url)
        except ValueError as error:
            raise ValueError(f"invalid Redis URL {self.url!r}: {error}") from None
        if not isinstance(key_prefix, str) or not key_prefix:
            raise ValueError(f"key_prefix must be a non-empty str, got {key_prefix!r}")
        self.name = "redis-cluster" if self._cluster else "redis"
        self._subscribe = "ssubscribe" if self._cluster else "subscribe"
        self._publish_command = "SPUBLISH" if self._cluster else "PUBLISH"
        self._timeout = timeout
        self._heartbeat = heartbeat_interval
        self._ttl_ms = max(1, round(heartbeat_interval * 3 * 1000))
        self._history_size = history_size
        self._history_ttl_ms = 0 if history_ttl is None else max(1, round(history_ttl * 1000))
        self._idle_ms = max(_IDLE_HISTORY_MS, 2 * self._history_ttl_ms)
        self._log = logger
        self._id = secrets.token_hex(8).encode()
        self.member_prefix = self._id.decode() + ":"
        self._prefix = key_prefix
        self._tag_start = f"{key_prefix}:{{"
        self._process_prefix = f"{key_prefix}:process:"
        self._process_key = self._process_prefix + self._id.decode()
        self._client: Any = None  # Redis or RedisCluster
        self._subscribers: dict[str, _Subscriber] = {}
        self._supervisor: asyncio.Task[None] | None = None
        self._failure: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._receive: Receive | None = None
        self._presence_changed: PresenceChanged | None = None
        self._members: dict[str, dict[str, Any]] = {}  # rooms with members here -> id: info
        self._written: dict[str, dict[str, bytes]] = {}  # what Redis holds of ours, per room
        self._rewrite = False  # after a reconnect: write everything again
        self._dirty: set[str] = set()  # rooms whose members or subscription are not yet in Redis
        self._acks: dict[str, asyncio.Future[None]] = {}
        self._wake = asyncio.Event()
        self._batch: asyncio.Future[None] | None = None
        self._resubscribing = False
        self.connected = False
        self.received = 0
        self.reconnects = 0
        self.failures = 0

    @property
    def subscriptions(self) -> int:
        return sum(len(subscriber.rooms) for subscriber in self._subscribers.values())

    def _base(self, room: str) -> str:
        return f"{self._tag_start}{_room_tag(room)}}}"

    def _channel(self, room: str) -> str:
        return self._base(room) + ":messages"

    def _room_of_channel(self, channel: bytes) -> str | None:
        text = channel.decode(errors="replace")
        if not text.startswith(self._tag_start) or not text.endswith("}:messages"):
            return None
        return _room_of_tag(text[len(self._tag_start) : -len("}:messages")])

    # -- lifecycle ------------------------------------------------------------------

    async def start(self, receive: Receive, presence_changed: PresenceChanged) -> None:
        loop = asyncio.get_running_loop()
        self._receive = receive
        self._presence_changed = presence_changed
        self._batch = loop.create_future()
        self._wake = asyncio.Event()
        settings: dict[str, Any] = {
            "socket_connect_timeout": self._timeout,
            "socket_timeout": self._timeout,
            # Reconnection is ours, with backoff and a log line per step: redis-py
            # retrying under us would hide the trouble and stretch every timeout.
            "retry": Retry(NoBackoff(), 0),
        }
        if self._cluster:
            self._client = RedisCluster.from_url(self._redis_url, **settings)
        else:
            self._client = Redis.from_url(self._redis_url, **settings)
        try:
            await self._open()
        except _TROUBLE as error:
            await self._close_client()
            raise BackendUnavailable(
                f"cannot connect to Redis at {self.url}: {describe(error, self._timeout)}"
            ) from error
        self.connected = True
        self._log.info(
            "hub connected to Redis%s at %s", " Cluster" if self._cluster else "", self.url
        )
        self._supervisor = loop.create_task(self._supervise(), name="wschannels-hub-redis")

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
                    for room, written in self._written.items():
                        if written:
                            pipe.hdel(self._base(room) + ":members", *written)
                    pipe.delete(self._process_key)
                    await pipe.execute()
            except _TROUBLE as error:
                self._log.warning(
                    "could not withdraw this process's members from Redis at %s (%s); "
                    "they drop out of presence within %.1f s",
                    self.url,
                    describe(error, self._timeout),
                    self._ttl_ms / 1000,
                )
        await self._close_subscribers()
        await self._close_client()
        if self.connected:
            self._log.info("hub disconnected from Redis at %s", self.url)
        self.connected = False
        self._members.clear()
        self._written.clear()
        self._dirty.clear()
        self._finish_batch()

    async def _open(self) -> None:
        """Register this process; on a single server, open the subscription connection."""
        client = self._client
        async with asyncio.timeout(self._timeout):
            if self._cluster:
                await client.initialize()
            await client.set(self._process_key, b"1", px=self._ttl_ms)
            if not self._cluster:
                await self._open_subscriber("", None)

    async def _open_subscriber(self, name: str, node: Any) -> _Subscriber:
        """A pub/sub connection to the server, or (cluster) to the shard ``node``."""
        if node is None:
            client = None
            pubsub = self._client.pubsub()
        else:
            settings: dict[str, Any] = {
                key: value
                for key, value in self._connection_kwargs.items()
                if key not in ("host", "port", "db", "connection_class", "path")
            }
            client = Redis(
                host=node.host,
                port=node.port,
                socket_connect_timeout=self._timeout,
                socket_timeout=self._timeout,
                retry=Retry(NoBackoff(), 0),
                **settings,
            )
            pubsub = client.pubsub()
        try:
            await pubsub.connect()
        except BaseException:
            await pubsub.aclose()
            if client is not None:
                await client.aclose()
            raise
        subscriber = _Subscriber(name, pubsub, client, asyncio.get_running_loop().time())
        self._subscribers[name] = subscriber
        if self._failure is not None:
            self._spawn(self._read(subscriber))
        return subscriber

    async def _close_subscribers(self) -> None:
        subscribers = list(self._subscribers.values())
        self._subscribers.clear()
        for subscriber in subscribers:
            try:
                async with asyncio.timeout(self._timeout):
                    await subscriber.pubsub.aclose()  # type: ignore[no-untyped-call]
                    if subscriber.client is not None:
                        await subscriber.client.aclose()
            except _TROUBLE as error:
                self._log.debug("closing a subscription connection: %r", error)

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
        if client is None:
            return
        try:
            async with asyncio.timeout(self._timeout):
                if self._cluster:
                    for node in client.get_nodes():
                        await node.disconnect()
                else:
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

    def _spawn(self, coroutine: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        failure = self._failure
        if task.cancelled() or failure is None or failure.done():
            return
        error = task.exception()
        failure.set_exception(error or ConnectionError("the subscription ended"))

    def lose(self, error: BaseException) -> None:
        """Give up on the current connection (a command failed): reconnect."""
        failure = self._failure
        if failure is not None and not failure.done():
            failure.set_exception(error)
        self.connected = False

    async def _supervise(self) -> None:
        while True:
            try:
                await self._serve()
                error: BaseException = ConnectionError("the subscription ended")
            except _TROUBLE as trouble:
                error = trouble
            except Exception as bug:  # keep the hub alive, but say loudly what happened
                self._log.error("hub Redis session failed", exc_info=True)
                error = bug
            self.connected = False
            self._acks.clear()
            self._finish_batch()
            if isinstance(error.__context__, _TROUBLE):
                error = error.__context__  # what broke, not redis-py's failed retry on top
            self._log.warning(
                "hub lost Redis at %s (%s): members here still get this process's "
                "publishes; reconnecting",
                self.url,
                describe(error, self._timeout),
            )
            await self._close_subscribers()
            await self._drop_pooled_connections()
            await self._reconnect()

    async def _reconnect(self) -> None:
        """Try again and again, waiting twice as long each time (with jitter), up to a cap."""
        attempt = 0
        while True:
            await asyncio.sleep(_backoff(attempt) * random.uniform(0.5, 1.0))
            attempt += 1
            try:
                await self._open()
            except _TROUBLE as error:
                await self._close_subscribers()
                self._log.warning(
                    "hub: Redis at %s still unreachable (attempt %d: %s); retrying in up to %.2f s",
                    self.url,
                    attempt,
                    describe(error, self._timeout),
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
            return

    async def _serve(self) -> None:
        """Read, sync and heartbeat on one set of connections until one of them fails."""
        loop = asyncio.get_running_loop()
        self._failure = loop.create_future()
        # New connections have no subscriptions, and Redis may have restarted empty.
        self._dirty.update(self._members)
        self._dirty.update(self._written)
        self._rewrite = True
        self._wake.set()
        for subscriber in self._subscribers.values():
            self._spawn(self._read(subscriber))
        self._spawn(self._sync())
        self._spawn(self._beat())
        try:
            await self._failure
        finally:
            self._failure = None
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _read(self, subscriber: _Subscriber) -> None:
        """Deliver messages from the backend; note subscription acks and pongs."""
        receive = self._receive
        presence_changed = self._presence_changed
        assert receive is not None and presence_changed is not None
        loop = asyncio.get_running_loop()
        own = self._id
        pubsub = subscriber.pubsub
        while True:
            message: dict[str, Any] | None = await pubsub.get_message(timeout=None)
            if message is None:
                continue
            kind = message["type"]
            if kind in ("message", "smessage"):
                data: bytes = message["data"]
                room = self._room_of_channel(message["channel"])
                if room is None:
                    continue
                head = data[:4]
                try:
                    if head == _MAGIC:
                        if data[len(_MAGIC) : _ID_END] == own:
                            continue  # our own publish: delivered here already
                        _, _, frames = open_envelope(data)
                        position = None
                        excluded = 0
                    elif head == _POSITIONED:
                        position, rest = open_positioned(data)
                        origin, excluded, frames = open_envelope(rest)
                        if origin != own:
                            excluded = 0
                    elif head == _PRESENCE:
                        if data[4:] != own:
                            presence_changed(room)
                        continue
                    else:
                        raise ValueError("not a wschannels message")
                except ValueError as error:
                    self._log.warning(
                        "hub: ignored a message on %r: %s", message["channel"][:200], error
                    )
                    continue
                self.received += 1
                try:
                    pending = receive(room, frames, position, excluded)
                    if pending is not None:
                        await pending
                except Exception:
                    self._log.error("hub: delivering to room %r failed", room, exc_info=True)
            elif kind in ("subscribe", "ssubscribe"):
                room = self._room_of_channel(message["channel"])
                ack = None if room is None else self._acks.pop(room, None)
                if ack is not None and not ack.done():
                    ack.set_result(None)
            elif kind == "pong":
                subscriber.last_pong = loop.time()

    async def _sync(self) -> None:
        """Bring Redis in line with this process's rooms, a batch of changes at a time."""
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            batch, self._batch = self._batch, loop.create_future()
            try:
                await self._apply(dirty)
            except BaseException:
                self._dirty |= dirty
                raise
            finally:
                if batch is not None and not batch.done():
                    batch.set_result(None)
            if self._resubscribing and not self._dirty:
                self._resubscribing = False
                self._log.warning(
                    "hub re-subscribed %d rooms on Redis at %s", self.subscriptions, self.url
                )

    async def _apply(self, dirty: set[str]) -> None:
        if not dirty:
            return
        client = self._client
        members = self._members
        rewrite, self._rewrite = self._rewrite, False
        async with asyncio.timeout(self._timeout):
            pipe = client.pipeline(transaction=False)
            writes: list[tuple[str, dict[str, bytes]]] = []
            for room in dirty:
                now = {
                    key: msgspec.json.encode(info) for key, info in members.get(room, {}).items()
                }
                before = self._written.get(room, {})
                changed = {
                    key: value for key, value in now.items() if rewrite or before.get(key) != value
                }
                removed = [key for key in before if key not in now]
                key = self._base(room) + ":members"
                if changed:
                    pipe.hset(key, mapping=changed)
                if removed:
                    pipe.hdel(key, *removed)
                if changed or removed:
                    pipe.execute_command(
                        self._publish_command, self._channel(room), _PRESENCE + self._id
                    )
                writes.append((room, now))
            await pipe.execute()
            for room, now in writes:
                if now:
                    self._written[room] = now
                else:
                    self._written.pop(room, None)
            await self._subscriptions(dirty)

    async def _subscriptions(self, dirty: set[str]) -> None:
        members = self._members
        leaving: dict[str, list[str]] = {}
        joining: dict[str, list[str]] = {}
        subscribed = {room: s for s in self._subscribers.values() for room in s.rooms}
        for room in dirty:
            subscriber = subscribed.get(room)
            if room not in members and subscriber is not None:
                leaving.setdefault(subscriber.name, []).append(room)
            elif room in members and subscriber is None:
                joining.setdefault(await self._shard_of(room), []).append(room)
        unsubscribe = "s" + "unsubscribe" if self._cluster else "unsubscribe"
        for name, rooms in leaving.items():
            subscriber = self._subscribers[name]
            await getattr(subscriber.pubsub, unsubscribe)(*(self._channel(r) for r in rooms))
            subscriber.rooms.difference_update(rooms)
        if not joining:
            return
        loop = asyncio.get_running_loop()
        acks = []
        for name, rooms in joining.items():
            subscriber = self._subscribers.get(name)
            if subscriber is None:
                node = self._client.get_node_from_key(self._channel(rooms[0]))
                subscriber = await self._open_subscriber(name, node)
            for room in rooms:
                ack = self._acks[room] = loop.create_future()
                acks.append(ack)
            await getattr(subscriber.pubsub, self._subscribe)(*(self._channel(r) for r in rooms))
            subscriber.rooms.update(rooms)
        # Once Redis acknowledged, a publish from anywhere reaches us.
        await asyncio.gather(*acks)

    async def _shard_of(self, room: str) -> str:
        if not self._cluster:
            return ""
        node = self._client.get_node_from_key(self._channel(room))
        return str(node.name)

    async def _beat(self) -> None:
        """Keep this process alive in Redis, and notice a connection that went silent."""
        client = self._client
        loop = asyncio.get_running_loop()
        silence = 2 * self._heartbeat + self._timeout
        while True:
            await asyncio.sleep(self._heartbeat)
            async with asyncio.timeout(self._timeout):
                await client.set(self._process_key, b"1", px=self._ttl_ms)
                for subscriber in list(self._subscribers.values()):
                    await subscriber.pubsub.ping()
            now = loop.time()
            for subscriber in self._subscribers.values():
                if now - subscriber.last_pong > silence:
                    raise ConnectionError(
                        f"no answer on the subscription connection for {silence:.1f} s"
                    )

    # -- what the hub asks --------------------------------------------------------------

    async def send(self, batch: list[Outgoing], history: bool) -> list[Position | None]:
        client = self._client
        if not self.connected or client is None:
            raise self._unreachable(f"{len(batch)} messages not sent")
        own = self._id
        try:
            async with asyncio.timeout(self._timeout):
                pipe = client.pipeline(transaction=False)
                for item in batch:
                    data = envelope(own, item.excluded, item.frames)
                    if history:
                        base = self._base(item.room)
                        pipe.eval(
                            _PUBLISH,
                            3,
                            base + ":meta",
                            base + ":history",
                            self._channel(item.room),
                            data,
                            self._history_size,
                            self._history_ttl_ms,
                            new_epoch(),
                            self._idle_ms,
                            self._publish_command,
                        )
                    else:
                        pipe.execute_command(self._publish_command, self._channel(item.room), data)
                results = await pipe.execute()
        except _TROUBLE as error:
            self.failures += 1
            self.lose(error)
            raise BackendUnavailable(
                f"publishing {len(batch)} messages through Redis at {self.url} failed "
                f"({describe(error, self._timeout)})"
            ) from error
        if not history:
            return [None] * len(batch)
        return [Position(int(offset), _text(epoch)) for offset, epoch in results]

    async def presence(self, room: str) -> dict[str, Any]:
        client = self._client
        if not self.connected or client is None:
            raise self._unreachable(f"cannot read the members of room {room!r}")
        key = self._base(room) + ":members"
        try:
            async with asyncio.timeout(self._timeout):
                fields: dict[bytes, bytes] = await client.hgetall(key)
                processes = sorted({field.split(b":", 1)[0] for field in fields} - {self._id})
                dead: set[bytes] = set()
                if processes:
                    pipe = client.pipeline(transaction=False)
                    for process in processes:
                        pipe.exists(self._process_prefix + process.decode())
                    alive = await pipe.execute()
                    dead = {p for p, flag in zip(processes, alive, strict=True) if not flag}
                if dead:
                    await client.hdel(
                        key, *(field for field in fields if field.split(b":", 1)[0] in dead)
                    )
        except _TROUBLE as error:
            self.failures += 1
            raise BackendUnavailable(
                f"reading the members of room {room!r} through Redis at {self.url} failed "
                f"({describe(error, self._timeout)})"
            ) from error
        found: dict[str, Any] = {}
        for field, value in fields.items():
            if field.split(b":", 1)[0] in dead:
                continue
            try:
                found[field.decode()] = msgspec.json.decode(value)
            except (msgspec.DecodeError, UnicodeDecodeError):
                self._log.warning("hub: ignored a member entry in %s: %r", key, field[:100])
        return found

    async def history(self, room: str) -> tuple[list[Entry], Position | None]:
        client = self._client
        if not self.connected or client is None:
            raise self._unreachable(f"cannot read the history of room {room!r}")
        base = self._base(room)
        try:
            async with asyncio.timeout(self._timeout):
                (offset, epoch), stream = await client.eval(
                    _HISTORY, 2, base + ":meta", base + ":history", self._history_ttl_ms
                )
        except _TROUBLE as error:
            self.failures += 1
            raise BackendUnavailable(
                f"reading the history of room {room!r} through Redis at {self.url} failed "
                f"({describe(error, self._timeout)})"
            ) from error
        if offset is None or epoch is None:
            return [], None
        epoch_text = _text(epoch)
        entries = []
        for _, fields in stream:
            values = dict(zip(fields[::2], fields[1::2], strict=True))
            try:
                _, _, frames = open_envelope(values[b"d"])
                entries.append(Entry(Position(int(values[b"o"]), epoch_text), frames))
            except (KeyError, ValueError) as error:
                self._log.warning("hub: ignored a history entry of room %r: %s", room, error)
        return entries, Position(int(offset), epoch_text)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
