"""``Hub``: rooms of connections, and fan-out of one message to every member of a room.

A publish is encoded once per wire kind and then handed to every local member
by a plain loop over ``Connection.deliver``, which never waits: no task, no
future, no log line per member. A member that does not keep up is found in
that loop by one comparison (its queued bytes against ``max_queued_bytes``)
and dealt with after it, by the hub's :class:`SlowConsumerPolicy`, so one
stalled member never holds up a room.

The backend never holds up a publish either: the other processes' part goes
into the hub's outbox, bounded in bytes and drained in order by one task.
Presence (who is in a room, with a small ``info`` each) and, when the hub keeps
history, positions and recovery on ``join(since=...)`` go through the same
``Backend`` protocol, so memory, Redis, Redis Cluster and NATS behave alike.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
)
from types import TracebackType
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit

import msgspec

from ..channels import Channel, ChannelClosed, WouldBlock
from ..close_codes import CloseCode
from ..codecs import Frame, WireKind, encode_for_kind
from ..extras import require
from ..metrics import registry as metrics
from ..views import connection_of
from .backend import Backend, Entry, Frames, Outgoing
from .errors import BackendUnavailable, CannotRecover, SlowConsumer, SlowConsumerPolicy, redact
from .memory import MemoryBackend
from .positions import Position

__all__ = ["Hub", "HubStatistics", "PresenceEvent"]

_log = logging.getLogger("wschannels.hub")

_PLAIN_TYPES = (str, bytes, bytearray, memoryview)


class _Member(Protocol):
    """What the hub uses of a connection (``wschannels.engine.Connection``)."""

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
    """``"memory"``, ``"redis"``, ``"redis-cluster"`` or ``"nats"``."""
    connected: bool
    """Whether the backend is reachable (always True in memory)."""
    rooms: int
    """Rooms with members in this process."""
    members: int
    """Memberships in this process (a connection in three rooms counts three)."""
    subscriptions: int
    """Rooms this process is subscribed to in the backend."""
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
    """``BackendUnavailable`` raised by ``publish``, ``count`` and ``presence``."""
    reconnects: int
    outbox_bytes: int
    """Bytes of publishes waiting for the backend (or on their way to it)."""
    outbox_refused: int
    """Publishes refused at once: the outbox was full or the backend known to be down."""
    outbox_lost: int
    """Publishes taken into the outbox that the backend then failed to take."""
    recovered: int
    """Messages given to members from history when they joined with a position."""


class _Room:
    """A room's local members, split by wire kind so each kind's frame is made once."""

    __slots__ = (
        "_json_snapshot",
        "_plain_snapshot",
        "catching_up",
        "infos",
        "json",
        "last",
        "plain",
    )

    def __init__(self) -> None:
        self.json: dict[_Member, None] = {}
        self.plain: dict[_Member, None] = {}
        self.infos: dict[_Member, Any] = {}
        # Members joining with a position: a list of what arrived live while their
        # history was read, then (an int) the last offset history gave them, until
        # live delivery here has passed it.
        self.catching_up: dict[_Member, list[Entry] | int] = {}
        self.last: Position | None = None  # the last message of the room's history handed out here
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
        self.infos.pop(member, None)
        self.catching_up.pop(member, None)
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


class PresenceEvent(NamedTuple):
    """Who came and went in a room; the first event of a watch lists everyone as ``joined``."""

    room: str
    joined: tuple[Any, ...]
    """Infos of the members who joined since the last event."""
    left: tuple[Any, ...]
    """Infos of the members who left (or whose process died) since the last event."""
    members: tuple[Any, ...]
    """Infos of everyone in the room now, in every process."""


_WATCH_BUFFER = 16  # events a watcher may leave unread; older ones are dropped, never the newest


class Hub:
    """Rooms and fan-out: in this process by default, across processes over Redis or NATS.

    A handler joins its connection to rooms with its ``Sender``; a publish
    reaches every member of the room, in every process, in publish order per
    publisher. A member leaves with :meth:`leave`, or by itself when its
    connection ends.

    Args:
        url: None or ``"memory://"`` for the in-process hub;
            ``"redis://host:port/db"`` (or ``rediss://``, ``unix://``) to fan
            out through Redis pub/sub; ``"redis+cluster://host:port"`` for a
            Redis Cluster (sharded pub/sub); ``"nats://host:port"`` for NATS
            (JetStream for history and presence).
        max_queued_bytes: how many bytes of published messages a member may
            have waiting to be written before ``on_slow_consumer`` applies.
            A message always fits into an empty queue, however big.
        on_slow_consumer: a :class:`SlowConsumerPolicy` (or its value):
            ``"disconnect"`` (default), ``"drop_oldest"``, ``"drop_newest"``
            or ``"block"``.
        history_size: how many recent messages each room keeps (0, the
            default: no history). With history, every publish gets a
            :class:`Position`, and a member can join with the last position it
            saw to get exactly what it missed.
        history_ttl: seconds a message stays in history (None: until pushed
            out by ``history_size``).
        max_outbox_bytes: bytes of publishes that may wait for the backend;
            beyond it, ``publish`` raises ``BackendUnavailable`` at once.
        key_prefix: prefix of the backend's channels, subjects and keys, so
            that apps can share one server.
        backend_timeout: seconds a backend operation may take before it
            counts as unavailable: connecting at start, a publish, a count.
        heartbeat_interval: seconds between this process's heartbeats; when a
            process dies, its members drop out of presence and counts after
            three intervals.
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

        await hub.join(room, sender, info={"name": name})
        await hub.publish(room, message, exclude=sender)
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        max_queued_bytes: int = 1 << 20,
        on_slow_consumer: SlowConsumerPolicy | str = SlowConsumerPolicy.DISCONNECT,
        history_size: int = 0,
        history_ttl: float | None = None,
        max_outbox_bytes: int = 16 << 20,
        key_prefix: str = "wschannels",
        backend_timeout: float = 5.0,
        heartbeat_interval: float = 5.0,
        logger: logging.Logger | None = None,
    ) -> None:
        for name, number, least in (
            ("max_queued_bytes", max_queued_bytes, 1),
            ("history_size", history_size, 0),
            ("max_outbox_bytes", max_outbox_bytes, 1),
        ):
            if isinstance(number, bool) or not isinstance(number, int) or number < least:
                bound = "> 0" if least else ">= 0"
                raise ValueError(f"{name} must be an int {bound}, got {number!r}")
        try:
            self._policy = SlowConsumerPolicy(on_slow_consumer)
        except ValueError:
            choices = ", ".join(repr(policy.value) for policy in SlowConsumerPolicy)
            raise ValueError(
                f"on_slow_consumer must be one of {choices}, got {on_slow_consumer!r}"
            ) from None
        seconds: list[tuple[str, object]] = [
            ("backend_timeout", backend_timeout),
            ("heartbeat_interval", heartbeat_interval),
        ]
        if history_ttl is not None:
            seconds.append(("history_ttl", history_ttl))
        for name, value in seconds:
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
        if history_ttl is not None and not history_size:
            raise ValueError("history_ttl needs history_size > 0 (the hub keeps no history)")
        self._max_queued_bytes = max_queued_bytes
        self._history_size = history_size
        self._max_outbox_bytes = max_outbox_bytes
        self._timeout = float(backend_timeout)
        self._heartbeat = float(heartbeat_interval)
        self._logger = logger if logger is not None else _log
        self._member_log = _RateLimitedLog(self._logger)
        self._backend_log = _RateLimitedLog(self._logger)
        self._backend = _backend_for(
            url,
            key_prefix=key_prefix,
            timeout=self._timeout,
            heartbeat_interval=self._heartbeat,
            history_size=history_size,
            history_ttl=None if history_ttl is None else float(history_ttl),
            logger=self._logger,
        )
        self._rooms: dict[str, _Room] = {}
        # Rooms of each connection that joined; kept (maybe empty) until it ends,
        # because its close callback stays registered until then.
        self._joined: dict[_Member, set[str]] = {}
        self._ids: dict[_Member, int] = {}
        self._by_id: dict[int, _Member] = {}
        self._next_id = 0
        metrics.hubs.add(self)  # summed by wschannels.stats() while the hub lives
        # The outbox: publishes for the backend, in order, drained by one task.
        self._outbox: deque[tuple[Outgoing, asyncio.Future[Position | None] | None]] = deque()
        self._outbox_bytes = 0
        self._outbox_ready: asyncio.Event | None = None
        self._outbox_empty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # Presence watches: room -> channels, and the last view each room's watchers got.
        self._watches: dict[str, list[Channel[PresenceEvent]]] = {}
        self._views: dict[str, dict[str, Any]] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self._refresh_again: set[str] = set()
        self._unanswered: dict[Channel[PresenceEvent], int] = {}  # new watches: since when
        self._watch_generation = 0
        self._started = False
        self._published = 0
        self._delivered = 0
        self._disconnected = 0
        self._dropped_oldest = 0
        self._dropped_newest = 0
        self._waits = 0
        self._undeliverable = 0
        self._refused = 0
        self._lost = 0
        self._recovered = 0

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

    @property
    def history_size(self) -> int:
        """Messages each room keeps (0: no history)."""
        return self._history_size

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Connect the backend. Call once before use; the hub can be started again after stop.

        Raises:
            BackendUnavailable: the backend could not be reached (the message names the URL).
            RuntimeError: the hub is already started.
        """
        if self._started:
            raise RuntimeError("the Hub is already started")
        await self._backend.start(self._receive, self._presence_changed)
        self._started = True
        loop = asyncio.get_running_loop()
        self._outbox_ready = asyncio.Event()
        self._outbox_empty = asyncio.Event()
        self._outbox_empty.set()
        if self._backend.remote:
            self._tasks.append(loop.create_task(self._drain(), name="wschannels-hub-outbox"))
        self._tasks.append(loop.create_task(self._watch_ticks(), name="wschannels-hub-presence"))

    async def stop(self) -> None:
        """Forget every member, leave the backend, and disconnect from it. Idempotent.

        Members' connections stay open; they are only no longer in any room.
        Publishes still in the outbox are sent first, for at most ``backend_timeout``.
        """
        if not self._started:
            return
        self._started = False
        if self._outbox and self._backend.connected:
            try:
                async with asyncio.timeout(self._timeout):
                    await self._outbox_empty.wait()
            except TimeoutError:
                pass
        tasks = [*self._tasks, *self._refreshing.values()]
        self._tasks.clear()
        self._refreshing.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._fail_outbox(BackendUnavailable("the hub stopped before the backend took this"))
        for channels in self._watches.values():
            for channel in channels:
                channel.close()
        self._watches.clear()
        self._unanswered.clear()
        self._views.clear()
        self._rooms.clear()
        self._joined.clear()
        self._ids.clear()
        self._by_id.clear()
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

    async def join(
        self,
        room: str,
        sender: Any,
        *,
        info: Any = None,
        since: Position | str | None = None,
        last: int = 0,
    ) -> None:
        """Make ``sender``'s connection a member of ``room`` (no-op if it already is).

        It stays a member until :meth:`leave` or until its connection ends (a
        connection that is already closing is not added). Over a remote
        backend, this returns once the room is subscribed and the member is in
        presence, so a publish made anywhere after it reaches the new member.
        While the backend is away the member gets this process's publishes,
        and the room is subscribed when the hub reconnects.

        Args:
            room: the room's name.
            sender: the handler's ``Sender`` (any binding).
            info: what :meth:`presence` and watchers show for this member: a
                small JSON-able value, e.g. ``{"name": "Ada"}`` (at most 1 KiB
                as JSON).
            since: the position of the last message this member got (from a
                previous connection): it gets exactly the messages after it,
                in order, before any live one. Needs ``history_size``.
            last: instead of ``since``: first get the room's last ``last``
                messages from history (fewer if it has fewer).

        Raises:
            CannotRecover: ``since`` is too old (trimmed) or from another
                epoch; the member was not added.
            BackendUnavailable: history could not be read; the member was not added.
            ValueError: ``since`` / ``last`` without history, or a bad position.
        """
        self._check_started()
        _check_room(room)
        member = _member_of(sender)
        recovering = since is not None or last > 0
        if recovering and not self._history_size:
            raise ValueError(
                "join(since=..., last=...) needs a hub that keeps history: Hub(..., history_size=N)"
            )
        if isinstance(since, str):
            since = Position.parse(since)
        if last < 0 or (since is not None and last):
            raise ValueError(f"give since or last >= 0, not both; got since={since}, last={last}")
        try:
            size = len(msgspec.json.encode(info))
        except (TypeError, msgspec.EncodeError) as error:
            raise TypeError(f"a member's info must be JSON-able: {error}") from None
        if size > 1024:
            raise ValueError(f"a member's info is at most 1 KiB as JSON; this one is {size} bytes")
        if member.closed:
            return  # it is ending: its close callback may already have run
        rooms = self._joined.get(member)
        if rooms is None:
            rooms = self._joined[member] = set()
            self._next_id += 1
            self._ids[member] = self._next_id
            self._by_id[self._next_id] = member
            member.add_close_callback(self._connection_ended)
        if room in rooms:
            return
        kind: WireKind = member.codec.wire_kind
        if kind not in ("json", "plain"):
            raise ValueError(f"unknown wire kind {kind!r} for {member!r}")
        members = self._rooms.get(room)
        if members is None:
            members = self._rooms[room] = _Room()
        if recovering:
            members.catching_up[member] = []
        members.add(member, kind)
        members.infos[member] = info
        rooms.add(room)
        self._backend.room_changed(room, self._presence_of(room, members))
        try:
            await self._backend.synced()
            if recovering:
                await self._catch_up(room, member, since, last)
        except BaseException:
            self._remove(member, room)
            raise
        self._refresh_presence(room)

    async def _catch_up(
        self, room: str, member: _Member, since: Position | None, last: int
    ) -> None:
        """Give a joining member the messages it missed, then what arrived meanwhile."""
        entries, current = await self._backend.history(room)
        members = self._rooms.get(room)
        if members is None or member not in members.catching_up or member.closed:
            return  # it left (or ended) while history was read
        if since is not None:
            if current is None or since.epoch != current.epoch or since.offset > current.offset:
                raise CannotRecover(room, since, "epoch", current)
            first = entries[0].position.offset if entries else current.offset + 1
            if first > since.offset + 1:
                raise CannotRecover(room, since, "trimmed", current)
            missed = [entry for entry in entries if entry.position.offset > since.offset]
            top = since.offset
        else:
            missed = entries[-last:]
            top = 0
        missed = [
            Entry(entry.position, _positioned(entry.frames, entry.position)) for entry in missed
        ]
        arrived = members.catching_up.pop(member)
        assert isinstance(arrived, list)
        epoch = current.epoch if current is not None else ""
        for entry in [*missed, *arrived]:
            if entry.position.epoch == epoch and entry.position.offset <= top:
                continue
            epoch, top = entry.position.epoch, entry.position.offset
            frame, nbytes = _frame_for(member, entry.frames)
            if frame is not None:
                member.deliver(frame, nbytes)
                self._delivered += 1
        self._recovered += len(missed)
        here = members.last
        if top and (here is None or here.epoch != epoch or here.offset < top):
            members.catching_up[member] = top  # history gave it more than live delivery here has

    async def leave(self, room: str, sender: Any) -> None:
        """End ``sender``'s membership of ``room``; no-op if it is not a member.

        When it was the room's last member here, the room is unsubscribed
        from the backend before this returns.
        """
        _check_room(room)
        if self._remove(_member_of(sender), room) and self._started:
            await self._backend.synced()

    def local_count(self, room: str) -> int:
        """Members of ``room`` in this process."""
        members = self._rooms.get(room)
        return 0 if members is None else len(members)

    async def count(self, room: str) -> int:
        """Members of ``room`` in every process.

        Members of a process that died stop counting within three heartbeats.

        Raises:
            BackendUnavailable: the backend did not answer within ``backend_timeout``.
        """
        return len(await self._presence_now(room))

    async def presence(self, room: str) -> list[Any]:
        """The ``info`` of every member of ``room``, in every process (in no particular order).

        Members of a process that died drop out within three heartbeats.

        Raises:
            BackendUnavailable: the backend did not answer within ``backend_timeout``.
        """
        return list((await self._presence_now(room)).values())

    async def _presence_now(self, room: str) -> dict[str, Any]:
        self._check_started()
        _check_room(room)
        try:
            found = await self._backend.presence(room)
        except BackendUnavailable:
            self._backend.failures += 1
            raise
        members = self._rooms.get(room)
        if members is not None:
            # Ours are exact here, and may be ahead of the backend.
            prefix = self._local_prefix()
            found = {key: info for key, info in found.items() if not key.startswith(prefix)}
            found.update(self._presence_of(room, members, prefix))
        return found

    def watch(self, room: str) -> AbstractContextManager[Channel[PresenceEvent]]:
        """Watch who comes and goes in ``room``: ``with hub.watch(room) as changes: ...``.

        ``changes`` is a channel of :class:`PresenceEvent` to receive from (or
        ``select`` on); the first event lists everyone in the room. Changes in
        other processes arrive at once in rooms with members here, else
        within a heartbeat; a dead process's members leave within three. A
        watcher that does not keep up loses the oldest events, never the
        newest (whose ``members`` is always the whole room).
        """
        self._check_started()
        _check_room(room)
        return self._watching(room)

    @contextmanager
    def _watching(self, room: str) -> Iterator[Channel[PresenceEvent]]:
        channel: Channel[PresenceEvent] = Channel(_WATCH_BUFFER)
        self._watches.setdefault(room, []).append(channel)
        # Its first event is the whole room, read after it started watching.
        self._watch_generation += 1
        self._unanswered[channel] = self._watch_generation
        self._refresh_presence(room)
        try:
            yield channel
        finally:
            channel.close()
            self._unanswered.pop(channel, None)
            channels = self._watches.get(room)
            if channels is not None and channel in channels:
                channels.remove(channel)
                if not channels:
                    del self._watches[room]
                    self._views.pop(room, None)

    def rooms(self) -> list[str]:
        """Names of the rooms with members in this process."""
        return list(self._rooms)

    def _local_prefix(self) -> str:
        return getattr(self._backend, "member_prefix", "")

    def _presence_of(self, room: str, members: _Room, prefix: str | None = None) -> dict[str, Any]:
        if prefix is None:
            prefix = self._local_prefix()
        ids = self._ids
        return {f"{prefix}{ids[member]}": info for member, info in members.infos.items()}

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
        if not members:
            del self._rooms[room]
        if self._started:
            self._backend.room_changed(room, self._presence_of(room, members))
            self._refresh_presence(room)

    def _forget(self, member: _Member) -> None:
        """Take ``member`` out of every room at once."""
        rooms = self._joined.pop(member, None)
        if rooms:
            for room in rooms:
                self._leave_room(member, room)
        serial = self._ids.pop(member, None)
        if serial is not None:
            self._by_id.pop(serial, None)

    def _connection_ended(self, member: _Member) -> None:
        self._forget(member)

    # -- presence watches ---------------------------------------------------------

    def _presence_changed(self, room: str) -> None:
        """The backend says ``room``'s presence changed elsewhere."""
        if room in self._watches:
            self._refresh_presence(room)

    def _refresh_presence(self, room: str) -> None:
        """Read ``room``'s presence and tell its watchers what changed; coalesced per room."""
        if room not in self._watches or not self._started:
            return
        if room in self._refreshing:
            self._refresh_again.add(room)
            return
        task = asyncio.get_running_loop().create_task(self._refresh(room))
        self._refreshing[room] = task

    async def _refresh(self, room: str) -> None:
        try:
            while True:
                self._refresh_again.discard(room)
                generation = self._watch_generation
                try:
                    now = await self._presence_now(room)
                except BackendUnavailable as error:
                    self._backend_log.warning(f"hub: presence of room {room!r} not read: {error}")
                    return
                self._announce(room, now, generation)
                if room not in self._refresh_again:
                    return
        finally:
            self._refreshing.pop(room, None)

    def _announce(self, room: str, now: dict[str, Any], generation: int) -> None:
        channels = self._watches.get(room)
        if not channels:
            return
        before = self._views.get(room)
        self._views[room] = now
        everyone = tuple(now.values())
        whole = PresenceEvent(room, everyone, (), everyone)
        event = None
        if before is not None:
            joined = tuple(info for key, info in now.items() if key not in before)
            left = tuple(info for key, info in before.items() if key not in now)
            if joined or left:
                event = PresenceEvent(room, joined, left, everyone)
        unanswered = self._unanswered
        for channel in channels:
            since = unanswered.get(channel)
            if since is None:
                if event is not None:
                    self._tell(channel, event)
            elif since <= generation:
                del unanswered[channel]
                self._tell(channel, whole)
        if any(channel in unanswered for channel in channels):
            self._refresh_presence(room)  # a read that began before they watched: once more

    @staticmethod
    def _tell(channel: Channel[PresenceEvent], event: PresenceEvent) -> None:
        while True:
            try:
                channel.send_nowait(event)
                return
            except WouldBlock:
                try:
                    channel.recv_nowait()  # the oldest goes; the newest is the whole room
                except (WouldBlock, ChannelClosed):
                    return
            except ChannelClosed:
                return

    async def _watch_ticks(self) -> None:
        """Every heartbeat, look again at watched rooms: a dead process's members leave."""
        while True:
            await asyncio.sleep(self._heartbeat)
            for room in list(self._watches):
                self._refresh_presence(room)

    # -- publishing ---------------------------------------------------------------

    async def publish(
        self, room: str, message: object, exclude: Any | None = None
    ) -> Position | None:
        """Send ``message`` to every member of ``room``, in every process.

        The message is encoded once per wire kind (``json(Model)`` members get
        its JSON, ``messages()`` / ``bytes_messages()`` / ``raw()`` members get
        a ``str`` as a text frame and ``bytes`` as a binary one) and the same
        frame goes to every member. A member whose binding cannot carry it (a
        non-``str``/``bytes`` message for a ``messages()`` member) gets a
        ``TypeError`` on its ``errors`` channel instead.

        Without history, members here have it queued when this returns, and
        this never waits for the backend: the other processes' part goes into
        the hub's outbox, sent in order by one task.

        With history (``history_size``), the message gets the room's next
        position, which this returns; a message that encodes to a JSON object
        reaches ``json(Model)`` members with that position added as
        ``"pos": "OFFSET.EPOCH"``. In memory that is at once. Over a remote
        backend, the backend sets the order (so that a position means the same
        in every process): every member, here too, gets the message in that
        order, and this waits for the position, at most ``backend_timeout``.

        Args:
            room: the room's name.
            message: what to send.
            exclude: a ``Sender`` whose connection should not get it (e.g. the author's).

        Raises:
            BackendUnavailable: at once when the backend is known to be down or
                the outbox is full (``max_outbox_bytes``); in a room with
                history, also when the backend did not confirm the message in
                time. Without history, the members in this process got it.
            TypeError: the message cannot be encoded as JSON.
        """
        self._check_started()
        _check_room(room)
        excluded = None if exclude is None else _member_of(exclude)
        members = self._rooms.get(room)
        backend = self._backend
        remote = backend.remote
        want_json = remote or (members is not None and bool(members.json))
        want_plain = remote or (members is not None and bool(members.plain))
        frames = Frames(
            encode_for_kind("json", message) if want_json or self._history_size else None,
            encode_for_kind("plain", message)
            if (want_plain or self._history_size) and isinstance(message, _PLAIN_TYPES)
            else None,
        )
        self._published += 1
        if self._history_size:
            if not remote:
                assert isinstance(backend, MemoryBackend)
                position = backend.append(room, frames)
                pending = self._receive(room, frames, position, 0, excluded)
                if pending is not None:
                    await pending
                return position
            serial = 0 if excluded is None else self._ids.get(excluded, 0)
            waiter = self._enqueue(Outgoing(room, frames, serial), True)
            assert waiter is not None
            return await self._confirmed(room, waiter)
        blocked = None if members is None else self._fan_out(room, members, frames, excluded)
        try:
            if remote:
                self._enqueue(Outgoing(room, frames, 0), False)
        finally:
            if blocked:
                await self._deliver_blocked(blocked)
        return None

    def _enqueue(self, outgoing: Outgoing, confirm: bool) -> asyncio.Future[Position | None] | None:
        """Hand a publish to the outbox, or refuse it at once."""
        backend = self._backend
        problem = None
        if not backend.connected:
            problem = f"{backend.url} is unreachable (the hub is reconnecting)"
        elif self._outbox_bytes + outgoing.nbytes > self._max_outbox_bytes and self._outbox:
            problem = (
                f"the hub's outbox is full ({self._outbox_bytes} bytes waiting for "
                f"{backend.url}, max_outbox_bytes={self._max_outbox_bytes})"
            )
        if problem is not None:
            self._refused += 1
            backend.failures += 1
            reached = "nobody" if self._history_size else "this process's members only"
            raise BackendUnavailable(
                f"{problem}: the message to room {outgoing.room!r} reached {reached}"
            )
        waiter = asyncio.get_running_loop().create_future() if confirm else None
        self._outbox.append((outgoing, waiter))
        self._outbox_empty.clear()
        self._outbox_bytes += outgoing.nbytes
        assert self._outbox_ready is not None
        self._outbox_ready.set()
        return waiter

    async def _confirmed(
        self, room: str, waiter: asyncio.Future[Position | None]
    ) -> Position | None:
        try:
            async with asyncio.timeout(self._timeout):
                return await asyncio.shield(waiter)
        except TimeoutError:
            self._backend.failures += 1
            for index, (_, queued) in enumerate(self._outbox):
                if queued is waiter:
                    outgoing, _ = self._outbox[index]
                    del self._outbox[index]
                    self._outbox_bytes -= outgoing.nbytes
                    waiter.cancel()
                    raise BackendUnavailable(
                        f"{self._backend.url} took nothing for "
                        f"{self._timeout} s: the message to room {room!r} was withdrawn "
                        "and reached nobody"
                    ) from None
            waiter.add_done_callback(_ignore_result)
            raise BackendUnavailable(
                f"{self._backend.url} did not confirm the message to room "
                f"{room!r} within {self._timeout} s: it was sent, and may still be delivered"
            ) from None

    async def _drain(self) -> None:
        """The outbox's one task: send publishes in order, a batch at a time."""
        ready = self._outbox_ready
        assert ready is not None
        outbox = self._outbox
        history = bool(self._history_size)
        while True:
            while not outbox:
                ready.clear()
                await ready.wait()
            batch = [outbox[index] for index in range(min(len(outbox), 512))]
            try:
                positions = await self._backend.send([item for item, _ in batch], history)
            except BackendUnavailable as error:
                self._lost += len(batch)
                self._backend_log.warning(
                    f"hub: {len(batch)} publishes lost for the other processes: {error}"
                )
                for _, waiter in batch:
                    if waiter is not None and not waiter.done():
                        waiter.set_exception(error)
            except Exception as error:  # a bug: keep the outbox alive, say so loudly
                self._logger.error("hub: the outbox failed", exc_info=True)
                self._lost += len(batch)
                for _, waiter in batch:
                    if waiter is not None and not waiter.done():
                        waiter.set_exception(BackendUnavailable(f"the outbox failed: {error!r}"))
            else:
                for (_, waiter), position in zip(batch, positions, strict=True):
                    if waiter is not None and not waiter.done():
                        waiter.set_result(position)
            for item in batch:
                # Withdrawn items (a publish that gave up) are gone from the outbox already.
                if outbox and outbox[0] is item:
                    outbox.popleft()
                    self._outbox_bytes -= item[0].nbytes
            if not outbox:
                self._outbox_empty.set()

    def _fail_outbox(self, error: BackendUnavailable) -> None:
        while self._outbox:
            _, waiter = self._outbox.popleft()
            self._lost += 1
            if waiter is not None and not waiter.done():
                waiter.set_exception(error)
                waiter.add_done_callback(_ignore_result)
        self._outbox_bytes = 0
        self._outbox_empty.set()

    def _receive(
        self,
        room: str,
        frames: Frames,
        position: Position | None = None,
        excluded_id: int = 0,
        excluded: _Member | None = None,
    ) -> Awaitable[None] | None:
        """Deliver a message from the backend (or, in memory, a message with a position)."""
        members = self._rooms.get(room)
        if members is None:
            return None
        if excluded_id:
            excluded = self._by_id.get(excluded_id)
        if position is None:
            blocked = self._fan_out(room, members, frames, excluded)
            return self._deliver_blocked(blocked) if blocked else None
        last = members.last
        if last is not None and last.epoch == position.epoch and position.offset <= last.offset:
            return None  # had it already
        members.last = position
        frames = _positioned(frames, position)
        skip: set[_Member] | None = None
        if members.catching_up:
            skip = set()
            entry = Entry(position, frames)
            for member, state in list(members.catching_up.items()):
                if isinstance(state, list):
                    state.append(entry)
                    skip.add(member)
                elif position.offset <= state:
                    skip.add(member)
                else:
                    del members.catching_up[member]
            if excluded is not None:
                skip.add(excluded)
        blocked = self._fan_out(room, members, frames, excluded, skip)
        return self._deliver_blocked(blocked) if blocked else None

    def _fan_out(
        self,
        room: str,
        members: _Room,
        frames: Frames,
        excluded: _Member | None,
        skip: set[_Member] | None = None,
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
                if member is excluded or (skip is not None and member in skip):
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
            outbox_bytes=self._outbox_bytes,
            outbox_refused=self._refused,
            outbox_lost=self._lost,
            recovered=self._recovered,
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


def _positioned(frames: Frames, position: Position) -> Frames:
    """``frames`` with ``"pos"`` added to a JSON object, once per message and process."""
    frame = frames.json
    if type(frame) is not str or not frame.endswith("}"):
        return frames
    if frame == "{}":
        positioned = f'{{"pos":"{position}"}}'
    else:
        positioned = f'{frame[:-1]},"pos":"{position}"}}'
    return Frames(positioned, frames.plain)


def _frame_for(member: _Member, frames: Frames) -> tuple[Frame | None, int]:
    """The frame of ``frames`` that ``member``'s binding takes, and its size."""
    if member.codec.wire_kind == "json":
        return frames.json, frames.json_nbytes
    return frames.plain, frames.plain_nbytes


def _ignore_result(future: asyncio.Future[Any]) -> None:
    """Retrieve a future's outcome nobody waits for any more, so asyncio does not log it."""
    if not future.cancelled():
        future.exception()


def _member_of(sender: Any) -> _Member:
    """The connection behind a handler's ``Sender``."""
    try:
        return connection_of(sender)
    except TypeError:
        raise TypeError(
            f"the hub takes the handler's Sender (e.g. sender: Sender[Message]), got {sender!r}"
        ) from None


def _check_room(room: object) -> None:
    if type(room) is not str and not isinstance(room, str):
        raise TypeError(f"a room name is a str, got {type(room).__name__}")


def _backend_for(
    url: str | None,
    *,
    key_prefix: str,
    timeout: float,
    heartbeat_interval: float,
    history_size: int,
    history_ttl: float | None,
    logger: logging.Logger,
) -> Backend:
    """The backend a URL names."""
    if url is None:
        return MemoryBackend(history_size, history_ttl)
    if not isinstance(url, str):
        raise TypeError(f"the hub URL must be a str or None, got {url!r}")
    scheme = urlsplit(url).scheme.lower()
    if scheme == "memory":
        return MemoryBackend(history_size, history_ttl)
    settings: dict[str, Any] = {
        "key_prefix": key_prefix,
        "timeout": timeout,
        "heartbeat_interval": heartbeat_interval,
        "history_size": history_size,
        "history_ttl": history_ttl,
        "logger": logger,
    }
    if scheme in ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster"):
        require("redis", "redis", f"Hub({redact(url)!r})")
        from .redis import RedisBackend

        return RedisBackend(url, **settings)
    if scheme in ("nats", "tls"):
        require("nats", "nats", f"Hub({redact(url)!r})")
        from .nats import NatsBackend

        return NatsBackend(url, **settings)
    raise ValueError(
        f"unsupported hub URL {redact(url)!r}: use None or 'memory://' for the in-process "
        "hub, 'redis://host:port/db' ('rediss://' for TLS) for Redis, "
        "'redis+cluster://host:port' for a Redis Cluster, or 'nats://host:port' for NATS"
    )
