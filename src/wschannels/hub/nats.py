"""The NATS backend: ``Hub("nats://host:port")``, with JetStream for history and presence.

Every room is one subject, ``{key_prefix}.room.{room}`` (a room name that is
not a plain token is written ``=`` + its UTF-8 in hex). A process subscribes
to the rooms it has members in; NATS routes each message only to those
processes. The hub's outbox task publishes many messages per flush.

History: a JetStream stream ``{key_prefix}_history`` takes the messages of
rooms with history on ``{key_prefix}.history.{room}`` and republishes each one
it stored to the room's subject (so live subscribers never see a message the
stream refused), keeping ``history_size`` messages per subject (``max_msgs_per_subject``)
for ``history_ttl`` (``max_age``). Each message carries its room offset and
epoch in headers; a publish names the last sequence it expects on its subject
(``Nats-Expected-Last-Subject-Sequence``), so offsets stay gapless across
publishers: a publisher that lost the race reads the last message and tries
again. A room whose history is empty starts again at offset 1 under a new
epoch. Live subscribers get the same message, headers included, in the
stream's order.

Presence: a JetStream key-value bucket ``{key_prefix}_presence`` whose
entries expire after three heartbeats; each process keeps one entry per room,
``{room}.{process id}``, with its members' infos, and refreshes it every
heartbeat, so a dead process's members leave on their own. A change is
announced on the room's subject.

Trouble: nats-py reconnects by itself and re-subscribes; while it is away,
``publish`` raises :class:`BackendUnavailable` at once and local delivery goes
on. Messages without history published elsewhere meanwhile are lost for this
process (NATS core keeps nothing for absent subscribers).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from typing import Any
from urllib.parse import urlsplit

import msgspec
import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy, RePublish, StorageType
from nats.js.errors import APIError, NotFoundError
from nats.js.kv import KeyValue

from .backend import Entry, Outgoing, PresenceChanged, Receive, SharedBackend, describe
from .errors import BackendUnavailable
from .positions import Position, new_epoch
from .redis import envelope, open_envelope, redact

__all__ = ["NatsBackend"]

_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,128}")
_OFFSET = "Wsc-Offset"
_EPOCH = "Wsc-Epoch"
_EXPECTED = "Nats-Expected-Last-Subject-Sequence"
_WRONG_LAST_SEQUENCE = 10071  # JetStream's error code when the expected sequence is not the last
_PRESENCE = b"wsp1"
_TROUBLE = (NatsError, OSError, TimeoutError, APIError)


def _token(room: str) -> str:
    """The room as one subject token (and key-value key part)."""
    return room if _TOKEN.fullmatch(room) else "=" + room.encode().hex()


def _room_of_token(token: str) -> str:
    return bytes.fromhex(token[1:]).decode() if token.startswith("=") else token


class NatsBackend(SharedBackend):
    """Fan-out over NATS subjects; history and presence in JetStream."""

    name = "nats"
    remote = True
    server = "NATS"

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
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError(f"invalid NATS URL {self.url!r}: it names no host")
        if not isinstance(key_prefix, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", key_prefix):
            raise ValueError(
                f"key_prefix must be letters, digits, '-' or '_' for NATS, got {key_prefix!r}"
            )
        self._url = url
        self._timeout = timeout
        self._heartbeat = heartbeat_interval
        self._history_size = history_size
        self._history_ttl = history_ttl
        self._log = logger
        self._id = secrets.token_hex(8).encode()
        self.member_prefix = self._id.decode() + ":"
        self._subject_prefix = f"{key_prefix}.room."
        self._presence_prefix = f"{key_prefix}.presence."
        # History messages are published here; the stream republishes each one it
        # stored to the room subject, so live subscribers get only what it took.
        self._ingest_prefix = f"{key_prefix}.history."
        self._stream = f"{key_prefix}_history"
        self._bucket = f"{key_prefix}_presence"
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._kv: KeyValue | None = None
        self._streams_stale = False  # after a reconnect, until the bucket and stream are checked
        self._receive: Receive | None = None
        self._presence_changed: PresenceChanged | None = None
        self._members: dict[str, dict[str, Any]] = {}
        self._written: set[str] = set()  # rooms with an entry of ours in the bucket
        self._subscriptions: dict[str, tuple[Subscription, Subscription]] = {}
        self._last: dict[str, tuple[int, int, str]] = {}  # room -> stream seq, offset, epoch
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._batch: asyncio.Future[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.connected = False
        self.received = 0
        self.reconnects = 0
        self.failures = 0

    @property
    def subscriptions(self) -> int:
        return len(self._subscriptions)

    def _subject(self, room: str) -> str:
        return self._subject_prefix + _token(room)

    # -- lifecycle ------------------------------------------------------------------

    async def start(self, receive: Receive, presence_changed: PresenceChanged) -> None:
        self._receive = receive
        self._presence_changed = presence_changed
        loop = asyncio.get_running_loop()
        self._batch = loop.create_future()
        self._wake = asyncio.Event()
        try:
            async with asyncio.timeout(self._timeout * 2):
                self._nc = await nats.connect(
                    self._url,
                    connect_timeout=max(1, round(self._timeout)),
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    disconnected_cb=self._disconnected,
                    reconnected_cb=self._reconnected,
                    error_cb=self._error,
                    name=f"wschannels-hub-{self._id.decode()}",
                )
                self._js = self._nc.jetstream(timeout=self._timeout)
                await self._ensure_streams()
        except (*_TROUBLE, nats.errors.NoServersError) as error:
            await self._close()
            raise BackendUnavailable(
                f"cannot connect to NATS at {self.url}: {describe(error, self._timeout)}"
            ) from error
        self.connected = True
        self._log.info("hub connected to NATS at %s", self.url)
        self._tasks = [
            loop.create_task(self._sync(), name="wschannels-hub-nats-sync"),
            loop.create_task(self._beat(), name="wschannels-hub-nats-beat"),
        ]

    async def _ensure_streams(self) -> None:
        """Create, or find, the presence bucket and the history stream.

        At start, and again after a reconnect: a restarted NATS server has lost
        the bucket (presence is kept in memory), and may have lost the stream.
        """
        js = self._js
        assert js is not None
        self._kv = await js.create_key_value(
            bucket=self._bucket,
            ttl=3 * self._heartbeat,
            history=1,
            storage=StorageType.MEMORY,
        )
        if self._history_size:
            await js.add_stream(
                name=self._stream,
                subjects=[self._ingest_prefix + ">"],
                republish=RePublish(src=self._ingest_prefix + ">", dest=self._subject_prefix + ">"),
                max_msgs_per_subject=self._history_size,
                max_age=self._history_ttl,
                storage=StorageType.FILE,
            )
        self._streams_stale = False

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        kv = self._kv
        if kv is not None and self.connected:
            try:
                async with asyncio.timeout(self._timeout):
                    for room in self._written:
                        await kv.delete(f"{_token(room)}.{self._id.decode()}")
            except _TROUBLE as error:
                self._log.warning(
                    "could not withdraw this process's members from NATS at %s (%s)",
                    self.url,
                    describe(error, self._timeout),
                )
        await self._close()
        if self.connected:
            self._log.info("hub disconnected from NATS at %s", self.url)
        self.connected = False
        self._members.clear()
        self._written.clear()
        self._subscriptions.clear()
        self._last.clear()
        batch = self._batch
        if batch is not None and not batch.done():
            batch.set_result(None)

    async def _close(self) -> None:
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            try:
                async with asyncio.timeout(self._timeout):
                    await nc.close()
            except _TROUBLE as error:
                self._log.debug("closing the NATS connection: %r", error)

    async def _disconnected(self) -> None:
        if self.connected and self._tasks:
            self.connected = False
            self._log.warning(
                "hub lost NATS at %s: members here still get this process's publishes; "
                "reconnecting",
                self.url,
            )

    async def _reconnected(self) -> None:
        self.reconnects += 1
        self.connected = True
        self._last.clear()
        self._streams_stale = True  # checked by the sync task before its next change
        self._log.warning(
            "hub reconnected to NATS at %s; re-subscribed %d rooms",
            self.url,
            len(self._subscriptions),
        )
        self._dirty.update(self._members)
        self._wake.set()

    async def _error(self, error: Exception) -> None:
        self._log.debug("NATS: %r", error)

    # -- background work ------------------------------------------------------------

    async def _sync(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            batch, self._batch = self._batch, loop.create_future()
            try:
                await self._apply(dirty)
            except _TROUBLE as error:
                self._dirty |= dirty
                self._log.warning(
                    "hub: room changes not yet in NATS at %s (%s); retrying",
                    self.url,
                    describe(error, self._timeout),
                )
                await asyncio.sleep(0.5)
                self._wake.set()
            finally:
                if batch is not None and not batch.done():
                    batch.set_result(None)

    async def _apply(self, dirty: set[str]) -> None:
        if self._streams_stale:
            async with asyncio.timeout(self._timeout):
                await self._ensure_streams()
        nc, kv = self._nc, self._kv
        assert nc is not None and kv is not None
        pid = self._id.decode()
        async with asyncio.timeout(self._timeout):
            for room in dirty:
                members = self._members.get(room)
                subscription = self._subscriptions.get(room)
                if members and subscription is None:
                    self._subscriptions[room] = (
                        await nc.subscribe(self._subject(room), cb=self._message),
                        await nc.subscribe(
                            self._presence_prefix + _token(room), cb=self._presence_notice
                        ),
                    )
                elif not members and subscription is not None:
                    del self._subscriptions[room]
                    for each in subscription:
                        await each.unsubscribe()
                key = f"{_token(room)}.{pid}"
                if members:
                    await kv.put(key, msgspec.json.encode(members))
                    self._written.add(room)
                elif room in self._written:
                    await kv.delete(key)
                    self._written.discard(room)
                await nc.publish(self._presence_prefix + _token(room), _PRESENCE + self._id)
            await nc.flush(timeout=max(1, round(self._timeout)))  # the server has every SUB now

    async def _beat(self) -> None:
        """Refresh this process's presence entries before they expire."""
        pid = self._id.decode()
        while True:
            await asyncio.sleep(self._heartbeat)
            kv = self._kv
            if kv is None or not self.connected:
                continue
            try:
                async with asyncio.timeout(self._timeout):
                    for room, members in list(self._members.items()):
                        await kv.put(f"{_token(room)}.{pid}", msgspec.json.encode(members))
            except _TROUBLE as error:
                self._log.warning(
                    "hub: presence heartbeat to NATS at %s failed (%s)",
                    self.url,
                    describe(error, self._timeout),
                )

    async def _presence_notice(self, msg: Msg) -> None:
        """Another process's members of a room changed."""
        assert self._presence_changed is not None
        if msg.data[:4] == _PRESENCE and msg.data[4:] != self._id:
            self._presence_changed(_room_of_token(msg.subject[len(self._presence_prefix) :]))

    async def _message(self, msg: Msg) -> None:
        receive = self._receive
        assert receive is not None
        room = _room_of_token(msg.subject[len(self._subject_prefix) :])
        data = msg.data
        try:
            origin, excluded, frames = open_envelope(data)
            headers = msg.headers or {}
            position = None
            if _OFFSET in headers:
                position = Position(int(headers[_OFFSET]), headers[_EPOCH])
        except (ValueError, KeyError) as error:
            self._log.warning("hub: ignored a message on %r: %s", msg.subject[:200], error)
            return
        if origin == self._id:
            if position is None:
                return  # our own publish: delivered here already
        else:
            excluded = 0
        self.received += 1
        try:
            pending = receive(room, frames, position, excluded)
            if pending is not None:
                await pending
        except Exception:
            self._log.error("hub: delivering to room %r failed", room, exc_info=True)

    # -- what the hub asks ------------------------------------------------------------

    async def send(self, batch: list[Outgoing], history: bool) -> list[Position | None]:
        nc, js = self._nc, self._js
        if not self.connected or nc is None or js is None:
            raise self._unreachable(f"{len(batch)} messages not sent")
        positions: list[Position | None] = []
        try:
            async with asyncio.timeout(self._timeout):
                for item in batch:
                    data = envelope(self._id, item.excluded, item.frames)
                    if history:
                        positions.append(await self._append(js, item.room, data))
                    else:
                        await nc.publish(self._subject(item.room), data)
                        positions.append(None)
                if not history:
                    await nc.flush(timeout=max(1, round(self._timeout)))
        except _TROUBLE as error:
            self.failures += 1
            raise BackendUnavailable(
                f"publishing {len(batch)} messages through NATS at {self.url} failed "
                f"({describe(error, self._timeout)})"
            ) from error
        return positions

    async def _last_of(self, js: JetStreamContext, room: str) -> tuple[int, int, str]:
        """The stream sequence, offset and epoch of ``room``'s last kept message."""
        try:
            last = await js.get_last_msg(self._stream, self._ingest_prefix + _token(room))
        except NotFoundError:
            return 0, 0, new_epoch()
        headers = last.headers or {}
        return int(last.seq or 0), int(headers.get(_OFFSET, 0)), headers.get(_EPOCH, new_epoch())

    async def _append(self, js: JetStreamContext, room: str, data: bytes) -> Position:
        """Publish with the room's next offset; a publisher that lost a race tries again."""
        subject = self._ingest_prefix + _token(room)
        for _ in range(100):
            last = self._last.get(room)
            if last is None:
                last = await self._last_of(js, room)
            sequence, offset, epoch = last
            headers = {_EXPECTED: str(sequence), _OFFSET: str(offset + 1), _EPOCH: epoch}
            try:
                ack = await js.publish(subject, data, headers=headers)
            except APIError as error:
                if error.err_code == _WRONG_LAST_SEQUENCE:
                    self._last.pop(room, None)
                    continue
                raise
            self._last[room] = (ack.seq, offset + 1, epoch)
            return Position(offset + 1, epoch)
        raise BackendUnavailable(f"room {room!r}: could not take the next offset in 100 tries")

    async def presence(self, room: str) -> dict[str, Any]:
        kv = self._kv
        if not self.connected or kv is None:
            raise self._unreachable(f"cannot read the members of room {room!r}")
        found: dict[str, Any] = {}
        try:
            async with asyncio.timeout(self._timeout):
                # A watch on the room's keys gives each one's latest value, then None.
                watcher = await kv.watch(f"{_token(room)}.*", ignore_deletes=True)
                try:
                    while True:
                        entry = await watcher.updates(timeout=self._timeout)  # type: ignore[no-untyped-call]
                        if entry is None:
                            break
                        if entry.value:
                            found.update(msgspec.json.decode(entry.value))
                        if not entry.delta:
                            break
                finally:
                    await watcher.stop()  # type: ignore[no-untyped-call]
        except _TROUBLE as error:
            self.failures += 1
            raise BackendUnavailable(
                f"reading the members of room {room!r} through NATS at {self.url} failed "
                f"({describe(error, self._timeout)})"
            ) from error
        return found

    async def history(self, room: str) -> tuple[list[Entry], Position | None]:
        js = self._js
        if not self.connected or js is None:
            raise self._unreachable(f"cannot read the history of room {room!r}")
        entries: list[Entry] = []
        try:
            async with asyncio.timeout(self._timeout):
                sequence, offset, epoch = await self._last_of(js, room)
                if not sequence:
                    return [], None
                subscription = await js.subscribe(
                    self._ingest_prefix + _token(room),
                    stream=self._stream,
                    ordered_consumer=True,
                    deliver_policy=DeliverPolicy.ALL,
                )
                try:
                    while True:
                        msg = await subscription.next_msg(timeout=self._timeout)
                        headers = msg.headers or {}
                        try:
                            _, _, frames = open_envelope(msg.data)
                            position = Position(int(headers[_OFFSET]), headers[_EPOCH])
                        except (ValueError, KeyError) as error:
                            self._log.warning("hub: ignored a history entry of %r: %s", room, error)
                        else:
                            entries.append(Entry(position, frames))
                        if msg.metadata.sequence.stream >= sequence:
                            break
                finally:
                    await subscription.unsubscribe()
        except _TROUBLE as error:
            self.failures += 1
            raise BackendUnavailable(
                f"reading the history of room {room!r} through NATS at {self.url} failed "
                f"({describe(error, self._timeout)})"
            ) from error
        entries = [entry for entry in entries if entry.position.epoch == epoch]
        return entries, Position(offset, epoch)
