"""``Hub``: rooms of connections, and fan-out of one message to every member of a room.

A publish is encoded once per wire kind and then handed to every local member
by a plain loop over ``Connection.deliver``, which never waits: no task, no
future, no log line per member. A member that does not keep up is found in
that loop by one comparison (its queued bytes against ``max_queued_bytes``)
and dealt with after it, by the hub's :class:`SlowConsumerPolicy`, so one
stalled member never holds up a room.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit

from ..close_codes import CloseCode
from ..codecs import Frame, WireKind, encode_for_kind
from ..extras import require
from .backend import Backend, Frames
from .errors import SlowConsumer, SlowConsumerPolicy, redact
from .memory import MemoryBackend

__all__ = ["Hub", "HubStatistics"]

_log = logging.getLogger("wschannels.hub")

_PLAIN_TYPES = (str, bytes, bytearray, memoryview)


class _Member(Protocol):
    """What the hub uses of a connection (``wschannels.connection.Connection``)."""

    @property
    def peer(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    @property
    def codec(self) -> Any: ...

    delivered_bytes_queued: int

    def deliver(self, frame: Frame, nbytes: int) -> None: ...
    def drop_oldest_delivered(self) -> int: ...
    def report(self, error: Exception) -> None: ...
    def disconnect(self, code: int) -> None: ...
    def add_close_callback(self, callback: Any) -> None: ...
    async def wait_delivered_below(self, nbytes: int) -> None: ...


class HubStatistics(NamedTuple):
    """A snapshot of a hub's counters, for status pages and tests."""

    backend: str
    """``"memory"`` or ``"redis"``."""
    connected: bool
    """Whether the backend is reachable (always True in memory)."""
    rooms: int
    """Rooms with members in this process."""
    members: int
    """Memberships in this process (a connection in three rooms counts three)."""
    subscriptions: int
    """Rooms this process is subscribed to in Redis."""
    published: int
    """``publish`` calls made here."""
    received: int
    """Messages received from other processes."""
    delivered: int
    """Frames handed to members here."""
    slow_consumers_disconnected: int
    slow_consumer_dropped_oldest: int
    """Queued frames dropped by ``drop_oldest``."""
    slow_consumer_dropped_newest: int
    slow_consumer_waits: int
    """Times a publish waited for a member under ``block``."""
    undeliverable: int
    """Deliveries skipped because a member's binding cannot carry the message."""
    backend_failures: int
    """``BackendUnavailable`` raised by ``publish`` and ``count``."""
    reconnects: int


class _Room:
    """A room's local members, split by wire kind so each kind's frame is made once."""

    __slots__ = ("_json_snapshot", "_plain_snapshot", "json", "plain")

    def __init__(self) -> None:
        self.json: dict[_Member, None] = {}
        self.plain: dict[_Member, None] = {}
        # Snapshots for the publish loop: stable while members leave mid-loop,
        # and rebuilt only after the membership changed.
        self._json_snapshot: tuple[_Member, ...] | None = None
        self._plain_snapshot: tuple[_Member, ...] | None = None

    def __len__(self) -> int:
        return len(self.json) + len(self.plain)

    def add(self, member: _Member, kind: WireKind) -> None:
        if kind == "json":
            self.json[member] = None
            self._json_snapshot = None
        else:
            self.plain[member] = None
            self._plain_snapshot = None

    def remove(self, member: _Member) -> bool:
        if member in self.json:
            del self.json[member]
            self._json_snapshot = None
            return True
        if member in self.plain:
            del self.plain[member]
            self._plain_snapshot = None
            return True
        return False

    def json_members(self) -> tuple[_Member, ...]:
        snapshot = self._json_snapshot
        if snapshot is None:
            snapshot = self._json_snapshot = tuple(self.json)
        return snapshot

    def plain_members(self) -> tuple[_Member, ...]:
        snapshot = self._plain_snapshot
        if snapshot is None:
            snapshot = self._plain_snapshot = tuple(self.plain)
        return snapshot


class _RateLimitedLog:
    """Warnings about members, at most one line a second; the next line tells how many were folded.

    Every event is still counted and put on the member's ``errors`` channel:
    only the log is thinned, so a stalled member cannot flood it.
    """

    __slots__ = ("_folded", "_logger", "_next")

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._next = 0.0
        self._folded = 0

    def warning(self, text: str) -> None:
        now = asyncio.get_running_loop().time()
        if now < self._next:
            self._folded += 1
            return
        if self._folded:
            text = f"{text} (and {self._folded} more like it in the last second)"
            self._folded = 0
        self._next = now + 1.0
        self._logger.warning("%s", text)


_Blocked = list[tuple[_Member, str, Frame, int]]


class Hub:
    """Rooms and fan-out: in this process by default, across processes over Redis.

    A handler joins its connection to rooms with its ``Sender``; a publish
    reaches every member of the room, in every process, in publish order per
    publisher. A member leaves with :meth:`leave`, or by itself when its
    connection ends.

    Args:
        url: None or ``"memory://"`` for the in-process hub;
            ``"redis://host:port/db"`` (or ``rediss://``, ``unix://``) to fan
            out through Redis pub/sub to any number of processes and hosts.
        max_queued_bytes: how many bytes of published messages a member may
            have waiting to be written before ``on_slow_consumer`` applies.
            A message always fits into an empty queue, however big.
        on_slow_consumer: a :class:`SlowConsumerPolicy` (or its value):
            ``"disconnect"`` (default), ``"drop_oldest"``, ``"drop_newest"``
            or ``"block"``.
        key_prefix: prefix of the Redis channels and keys, so that apps can
            share one Redis (pub/sub ignores the URL's database number).
        backend_timeout: seconds a Redis operation may take before it counts
            as unavailable: connecting at start, a publish, a count.
        heartbeat_interval: seconds between this process's Redis heartbeats;
            when a process dies, its members drop out of cluster-wide counts
            after three intervals.
        logger: where the hub logs (default ``logging.getLogger("wschannels.hub")``).

    Raises:
        ValueError: a URL the hub cannot use, or a bad option; the message says which.

    Start and stop it with the app. In a Starlette or FastAPI app, one line::

        hub = wschannels.Hub()  # or wschannels.Hub("redis://localhost:6379/0")
        app = Starlette(routes=routes, lifespan=hub.lifespan)
        app = FastAPI(lifespan=hub.lifespan)

    Inside a lifespan of your own, or anywhere else: ``async with hub: ...``
    (or ``await hub.start()`` ... ``await hub.stop()``).

    In a handler::

        await hub.join(room, sender)
        await hub.publish(room, message, exclude=sender)
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        max_queued_bytes: int = 1 << 20,
        on_slow_consumer: SlowConsumerPolicy | str = SlowConsumerPolicy.DISCONNECT,
        key_prefix: str = "wschannels",
        backend_timeout: float = 5.0,
        heartbeat_interval: float = 5.0,
        logger: logging.Logger | None = None,
    ) -> None:
        if isinstance(max_queued_bytes, bool) or not isinstance(max_queued_bytes, int):
            raise ValueError(f"max_queued_bytes must be an int > 0, got {max_queued_bytes!r}")
        if max_queued_bytes <= 0:
            raise ValueError(f"max_queued_bytes must be an int > 0, got {max_queued_bytes!r}")
        try:
            self._policy = SlowConsumerPolicy(on_slow_consumer)
        except ValueError:
            choices = ", ".join(repr(policy.value) for policy in SlowConsumerPolicy)
            raise ValueError(
                f"on_slow_consumer must be one of {choices}, got {on_slow_consumer!r}"
            ) from None
        for name, value in (
            ("backend_timeout", backend_timeout),
            ("heartbeat_interval", heartbeat_interval),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
        self._max_queued_bytes = max_queued_bytes
        self._logger = logger if logger is not None else _log
        self._member_log = _RateLimitedLog(self._logger)
        self._backend = _backend_for(
            url,
            key_prefix=key_prefix,
            timeout=float(backend_timeout),
            heartbeat_interval=float(heartbeat_interval),
            logger=self._logger,
        )
        self._rooms: dict[str, _Room] = {}
        # Rooms of each connection that joined; kept (maybe empty) until it ends,
        # because its close callback stays registered until then.
        self._joined: dict[_Member, set[str]] = {}
        self._started = False
        self._published = 0
        self._delivered = 0
        self._disconnected = 0
        self._dropped_oldest = 0
        self._dropped_newest = 0
        self._waits = 0
        self._undeliverable = 0

    def __repr__(self) -> str:
        state = "started" if self._started else "stopped"
        return f"<Hub {self._backend.name} {state}, {len(self._rooms)} rooms>"

    @property
    def max_queued_bytes(self) -> int:
        """Bytes of published messages a member may have waiting."""
        return self._max_queued_bytes

    @property
    def on_slow_consumer(self) -> SlowConsumerPolicy:
        """What happens to a member over ``max_queued_bytes``."""
        return self._policy

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Connect the backend. Call once before use; the hub can be started again after stop.

        Raises:
            BackendUnavailable: Redis could not be reached (the message names the URL).
            RuntimeError: the hub is already started.
        """
        if self._started:
            raise RuntimeError("the Hub is already started")
        await self._backend.start(self._receive)
        self._started = True

    async def stop(self) -> None:
        """Forget every member, leave the backend, and disconnect from it. Idempotent.

        Members' connections stay open; they are only no longer in any room.
        """
        if not self._started:
            return
        self._started = False
        self._rooms.clear()
        self._joined.clear()
        await self._backend.stop()

    async def __aenter__(self) -> Hub:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def lifespan(self, app: object) -> AbstractAsyncContextManager[None]:
        """The hub as a Starlette / FastAPI lifespan: ``Starlette(..., lifespan=hub.lifespan)``."""
        return self._lifespan()

    @asynccontextmanager
    async def _lifespan(self) -> AsyncIterator[None]:
        async with self:
            yield

    def _check_started(self) -> None:
        if not self._started:
            raise RuntimeError(
                "the Hub is not started: use 'async with hub:', 'await hub.start()', "
                "or lifespan=hub.lifespan in the app"
            )

    # -- membership ---------------------------------------------------------------

    async def join(self, room: str, sender: Any) -> None:
        """Make ``sender``'s connection a member of ``room`` (no-op if it already is).

        It stays a member until :meth:`leave` or until its connection ends (a
        connection that is already closing is not added). Over Redis, this
        returns once the room is subscribed and counted, so a publish made
        anywhere after it reaches the new member. Joining never fails because
        of Redis: while Redis is away the member gets this process's
        publishes, and the room is subscribed when the hub reconnects.

        Args:
            room: the room's name.
            sender: the handler's ``Sender`` (any binding).
        """
        self._check_started()
        _check_room(room)
        member = _member_of(sender)
        if member.closed:
            return  # it is ending: its close callback may already have run
        rooms = self._joined.get(member)
        if rooms is None:
            rooms = self._joined[member] = set()
            member.add_close_callback(self._connection_ended)
        if room in rooms:
            return
        kind: WireKind = member.codec.wire_kind
        if kind not in ("json", "plain"):
            raise ValueError(f"unknown wire kind {kind!r} for {member!r}")
        members = self._rooms.get(room)
        if members is None:
            members = self._rooms[room] = _Room()
        members.add(member, kind)
        rooms.add(room)
        self._backend.room_changed(room, len(members))
        await self._backend.synced()

    async def leave(self, room: str, sender: Any) -> None:
        """End ``sender``'s membership of ``room``; no-op if it is not a member.

        When it was the room's last member here, the room is unsubscribed
        from Redis before this returns.
        """
        _check_room(room)
        if self._remove(_member_of(sender), room) and self._started:
            await self._backend.synced()

    def local_count(self, room: str) -> int:
        """Members of ``room`` in this process."""
        members = self._rooms.get(room)
        return 0 if members is None else len(members)

    async def count(self, room: str) -> int:
        """Members of ``room`` in every process (over Redis), or in this one (in memory).

        Members of a process that died stop counting within three heartbeats.

        Raises:
            BackendUnavailable: Redis did not answer within ``backend_timeout``.
        """
        self._check_started()
        return await self._backend.count(room, self.local_count(room))

    def rooms(self) -> list[str]:
        """Names of the rooms with members in this process."""
        return list(self._rooms)

    def _remove(self, member: _Member, room: str) -> bool:
        rooms = self._joined.get(member)
        if rooms is None or room not in rooms:
            return False
        rooms.discard(room)
        self._leave_room(member, room)
        return True

    def _leave_room(self, member: _Member, room: str) -> None:
        members = self._rooms.get(room)
        if members is None or not members.remove(member):
            return
        count = len(members)
        if not count:
            del self._rooms[room]
        if self._started:
            self._backend.room_changed(room, count)

    def _forget(self, member: _Member) -> None:
        """Take ``member`` out of every room at once."""
        rooms = self._joined.pop(member, None)
        if rooms:
            for room in rooms:
                self._leave_room(member, room)

    def _connection_ended(self, member: _Member) -> None:
        self._forget(member)

    # -- publishing ---------------------------------------------------------------

    async def publish(self, room: str, message: object, exclude: Any | None = None) -> None:
        """Send ``message`` to every member of ``room``, in every process.

        The message is encoded once per wire kind (``json(Model)`` members get
        its JSON, ``messages()`` / ``bytes_messages()`` / ``raw()`` members get
        a ``str`` as a text frame and ``bytes`` as a binary one) and the same
        frame goes to every member. Members here have it queued when this
        returns; a member whose binding cannot carry it (a non-``str``/``bytes``
        message for a ``messages()`` member) gets a ``TypeError`` on its
        ``errors`` channel instead.

        Args:
            room: the room's name.
            message: what to send.
            exclude: a ``Sender`` whose connection should not get it (e.g. the author's).

        Raises:
            BackendUnavailable: Redis did not take the message within
                ``backend_timeout``; the members in this process got it, the
                other processes did not.
            TypeError: the message cannot be encoded as JSON.
        """
        self._check_started()
        _check_room(room)
        excluded = None if exclude is None else _member_of(exclude)
        members = self._rooms.get(room)
        remote = self._backend.remote
        want_json = remote or (members is not None and bool(members.json))
        want_plain = remote or (members is not None and bool(members.plain))
        frames = Frames(
            encode_for_kind("json", message) if want_json else None,
            encode_for_kind("plain", message)
            if want_plain and isinstance(message, _PLAIN_TYPES)
            else None,
        )
        self._published += 1
        blocked = None if members is None else self._fan_out(room, members, frames, excluded)
        try:
            if remote:
                await self._backend.publish(room, frames)
        finally:
            if blocked:
                await self._deliver_blocked(blocked)

    def _receive(self, room: str, frames: Frames) -> Awaitable[None] | None:
        """Deliver a message published in another process."""
        members = self._rooms.get(room)
        if members is None:
            return None
        blocked = self._fan_out(room, members, frames, None)
        return self._deliver_blocked(blocked) if blocked else None

    def _fan_out(
        self, room: str, members: _Room, frames: Frames, excluded: _Member | None
    ) -> _Blocked | None:
        """Hand each member its kind's frame; members over the bound go to the policy after."""
        slow: _Blocked | None = None
        limit = self._max_queued_bytes
        delivered = 0
        for group, frame, nbytes in (
            (members.json_members() if members.json else (), frames.json, frames.json_nbytes),
            (members.plain_members() if members.plain else (), frames.plain, frames.plain_nbytes),
        ):
            if not group:
                continue
            if frame is None:
                self._undeliverable_to(room, group, excluded)
                continue
            # A frame always fits an empty queue, so a message bigger than the
            # bound still reaches members that keep up.
            threshold = limit - nbytes
            for member in group:
                if member is excluded:
                    continue
                queued = member.delivered_bytes_queued
                if queued > threshold and queued:
                    if slow is None:
                        slow = []
                    slow.append((member, room, frame, nbytes))
                else:
                    member.deliver(frame, nbytes)
                    delivered += 1
        self._delivered += delivered
        if slow is None:
            return None
        return self._apply_policy(slow)

    def _apply_policy(self, slow: _Blocked) -> _Blocked | None:
        """Deal with the members that were over the bound; return those to wait for (block)."""
        policy = self._policy
        limit = self._max_queued_bytes
        blocked: _Blocked | None = None
        for entry in slow:
            member, room, frame, nbytes = entry
            if member.closed:
                continue  # already ending; its close callback takes it out of its rooms
            queued = member.delivered_bytes_queued
            if policy is SlowConsumerPolicy.DISCONNECT:
                _, dropped = _drop_delivered(member, 0)
                self._disconnected += 1
                self._forget(member)
                member.disconnect(CloseCode.TRY_AGAIN_LATER)
            elif policy is SlowConsumerPolicy.DROP_OLDEST:
                frames_dropped, dropped = _drop_delivered(member, limit - nbytes)
                self._dropped_oldest += frames_dropped
                member.deliver(frame, nbytes)
                self._delivered += 1
            elif policy is SlowConsumerPolicy.DROP_NEWEST:
                dropped = nbytes
                self._dropped_newest += 1
            else:
                dropped = 0
                self._waits += 1
                if blocked is None:
                    blocked = []
                blocked.append(entry)
            error = SlowConsumer(member.peer, room, policy, queued, nbytes, limit, dropped)
            member.report(error)
            self._member_log.warning(str(error))
        return blocked

    async def _deliver_blocked(self, blocked: _Blocked) -> None:
        """Under ``block``: wait for each member to have room, then hand it the frame."""
        limit = self._max_queued_bytes
        for member, _room, frame, nbytes in blocked:
            await member.wait_delivered_below(max(0, limit - nbytes))
            if not member.closed:
                member.deliver(frame, nbytes)
                self._delivered += 1

    def _undeliverable_to(
        self, room: str, group: tuple[_Member, ...], excluded: _Member | None
    ) -> None:
        error_text = (
            f"room {room!r}: a message that is not str or bytes cannot go to a member bound "
            "with messages(), bytes_messages() or raw(); publish str or bytes to this room, "
            "or bind its members with json(Model)"
        )
        for member in group:
            if member is not excluded and not member.closed:
                self._undeliverable += 1
                member.report(TypeError(error_text))
        self._member_log.warning(error_text)

    def statistics(self) -> HubStatistics:
        """The hub's counters at this instant."""
        backend = self._backend
        return HubStatistics(
            backend=backend.name,
            connected=backend.connected,
            rooms=len(self._rooms),
            members=sum(len(members) for members in self._rooms.values()),
            subscriptions=backend.subscriptions,
            published=self._published,
            received=backend.received,
            delivered=self._delivered,
            slow_consumers_disconnected=self._disconnected,
            slow_consumer_dropped_oldest=self._dropped_oldest,
            slow_consumer_dropped_newest=self._dropped_newest,
            slow_consumer_waits=self._waits,
            undeliverable=self._undeliverable,
            backend_failures=backend.failures,
            reconnects=backend.reconnects,
        )


def _drop_delivered(member: _Member, keep: int) -> tuple[int, int]:
    """Drop a member's oldest delivered frames until at most ``keep`` bytes remain.

    Returns (frames, bytes) dropped.
    """
    frames = dropped = 0
    while member.delivered_bytes_queued > keep:
        nbytes = member.drop_oldest_delivered()
        if not nbytes:
            break
        frames += 1
        dropped += nbytes
    return frames, dropped


def _member_of(sender: Any) -> _Member:
    """The connection behind a handler's ``Sender``."""
    member = getattr(sender, "_connection", None)
    if member is None or not hasattr(member, "deliver"):
        raise TypeError(
            f"the hub takes the handler's Sender (e.g. sender: Sender[Message]), got {sender!r}"
        )
    return member  # type: ignore[no-any-return]


def _check_room(room: object) -> None:
    if type(room) is not str and not isinstance(room, str):
        raise TypeError(f"a room name is a str, got {type(room).__name__}")


def _backend_for(
    url: str | None,
    *,
    key_prefix: str,
    timeout: float,
    heartbeat_interval: float,
    logger: logging.Logger,
) -> Backend:
    """The backend a URL names."""
    if url is None:
        return MemoryBackend()
    if not isinstance(url, str):
        raise TypeError(f"the hub URL must be a str or None, got {url!r}")
    scheme = urlsplit(url).scheme.lower()
    if scheme == "memory":
        return MemoryBackend()
    if scheme in ("redis", "rediss", "unix"):
        require("redis", "redis", f"Hub({redact(url)!r})")
        from .redis import RedisBackend

        return RedisBackend(
            url,
            key_prefix=key_prefix,
            timeout=timeout,
            heartbeat_interval=heartbeat_interval,
            logger=logger,
        )
    raise ValueError(
        f"unsupported hub URL {redact(url)!r}: use None or 'memory://' for the in-process "
        "hub, or 'redis://host:port/db' ('rediss://' for TLS) for Redis"
    )
