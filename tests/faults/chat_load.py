"""Chat load on a real node, database faults under it, and an accounting of what the log says.

``chatting`` connects N clients in M rooms of the chat example (``examples/chat``) over real
sockets; each client sends numbered messages (``c07:m12``) at a steady rate and records every
frame it receives. ``DatabaseFaults`` hurts the test's database from the server side: it
terminates the node's backends, or refuses connections for a while. ``ChatLoad.account``
then waits for the node to drain (every message sent is logged, and every logged message is
delivered, or a bounded time has passed), reads the ``events`` table and compares it with
what the clients sent and saw. The ``Report`` prints as a small table; ``problems()`` lists
every guarantee it found broken, in figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg

from service.api.application import Application
from service.loader import load_application
from tests.cli.process import database_of, with_database
from tests.support import Node, eventually, serve

#: The chat example, whatever directory pytest runs from.
CHAT = Path(__file__).resolve().parents[2] / "examples" / "chat"

#: The text of a numbered message: the sender's name and the message's number.
_NUMBERED = re.compile(r"^(c\d+):m(\d+)$")

#: Errors that mean the database cannot be read right now (the drain wait retries them):
#: refused or dropped connections, and "not currently accepting connections" (55000).
_UNREACHABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.ObjectNotInPrerequisiteStateError,
    asyncpg.exceptions.OperatorInterventionError,
)

#: How many examples of each kind of failure a report keeps.
_EXAMPLES = 3


@functools.cache
def chat_application() -> Application:
    """The chat example's Application, loaded as ``durable serve examples/chat`` loads it."""
    return load_application(str(CHAT))


@contextlib.asynccontextmanager
async def serving(
    database_url: str, application: Application, **settings: object
) -> AsyncIterator[Node]:
    """A node on a real port (``tests.support.serve``), once its LISTEN connection is up."""
    async with serve(database_url, application, **settings) as node:
        store = node.runtime.event_log

        def listening() -> bool:
            listener = store._listener  # type: ignore[attr-defined]
            return listener is not None and bool(listener.connected.is_set())

        await eventually(listening, 10)
        yield node


# -- faults ---------------------------------------------------------------------------------


class DatabaseFaults:
    """Faults of one database, made from another database's connection on the same server.

    Use as ``async with DatabaseFaults(url) as faults``; leaving it always lets connections
    to the database in again, whatever happened.
    """

    def __init__(self, database_url: str) -> None:
        self.name = database_of(database_url)
        self._admin_url = with_database(database_url, "postgres")
        self._admin: asyncpg.Connection | None = None
        #: Backends terminated, per round of ``kill_backends``.
        self.killed: list[int] = []

    async def __aenter__(self) -> DatabaseFaults:
        self._admin = await asyncpg.connect(self._admin_url)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._admin is not None
        try:
            await self.allow()
        finally:
            await self._admin.close()

    @property
    def admin(self) -> asyncpg.Connection:
        assert self._admin is not None, "use DatabaseFaults as an async context manager"
        return self._admin

    async def kill_backends(self) -> int:
        """Terminate every backend of the database (ours is on another one); how many."""
        killed: int = await self.admin.fetchval(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            self.name,
        )
        self.killed.append(killed)
        return killed

    async def kill_repeatedly(self, times: int, interval: float) -> None:
        """``times`` rounds of ``kill_backends``, ``interval`` seconds apart."""
        for round_ in range(times):
            if round_:
                await asyncio.sleep(interval)  # the fault's schedule, not a wait for an event
            await self.kill_backends()

    async def refuse(self) -> None:
        """Refuse new connections to the database and drop the open ones."""
        await self.admin.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
        await self.kill_backends()

    async def allow(self) -> None:
        await self.admin.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')

    async def outage(self, seconds: float) -> None:
        """The database refuses connections for ``seconds``, then accepts them again."""
        await self.refuse()
        try:
            await asyncio.sleep(seconds)  # the outage's length
        finally:
            await self.allow()


# -- the clients ----------------------------------------------------------------------------


@dataclass(eq=False)
class ChatClient:
    """One chatter: what it sent, and every message frame it received, in order."""

    name: str
    room: str
    ws: aiohttp.ClientWebSocketResponse
    #: Numbers of the messages written to the socket while it was open.
    sent: list[int] = field(default_factory=list)
    #: Numbers of the messages due while the socket was down (the server cannot have them).
    unsent: list[int] = field(default_factory=list)
    #: (sender, number) of every message frame received, in arrival order.
    received: list[tuple[str, int]] = field(default_factory=list)
    #: The same, as a set.
    received_set: set[tuple[str, int]] = field(default_factory=set)
    #: The room's members, as the latest join or leave frame listed them.
    online: set[str] = field(default_factory=set)
    #: Error frames the room sent this client (and frames that are no chat frame at all).
    errors: list[str] = field(default_factory=list)
    #: How the socket ended, if it ended before the load was over.
    dropped: str | None = None
    #: The load is over and closes the socket itself (its end is no drop).
    closing: bool = False

    def take(self, text: str) -> None:
        try:
            frame = json.loads(text)
        except ValueError:
            frame = None
        if isinstance(frame, dict) and frame.keys() == {"seq", "data"}:
            frame = frame["data"]  # a line the room published
        if not isinstance(frame, dict):
            self.errors.append(f"not a chat frame: {text[:80]!r}")
            return
        kind = frame.get("type")
        if kind == "message":
            numbered = _NUMBERED.match(str(frame.get("text", "")))
            if numbered is not None:
                key = (numbered[1], int(numbered[2]))
                self.received.append(key)
                self.received_set.add(key)
        elif kind in ("join", "leave"):
            self.online = set(frame["online"])
        elif kind == "error":
            self.errors.append(str(frame.get("message")))


class ChatLoad:
    """``clients`` chatters spread over ``rooms`` rooms, each sending ``rate`` messages/s."""

    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, clients: int, rooms: int, rate: float
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.rooms = [f"r{j}" for j in range(rooms)]
        self.rate = rate
        self.clients: list[ChatClient] = []
        self._count = clients
        self._progress = asyncio.Event()
        self._stop = asyncio.Event()
        self._receivers: list[asyncio.Task[None]] = []
        self._senders: list[asyncio.Task[None]] = []
        self._started = 0.0
        self.duration = 0.0

    def members(self, room: str) -> set[str]:
        return {c.name for c in self.clients if c.room == room}

    async def join(self, timeout: float = 20.0) -> None:
        """Connect every client; return once each sees its whole room online."""
        for i in range(self._count):
            name, room = f"c{i:02d}", self.rooms[i % len(self.rooms)]
            ws = await self.session.ws_connect(f"{self.base_url}/chat/{room}?username={name}")
            client = ChatClient(name, room, ws)
            self.clients.append(client)
            self._receivers.append(asyncio.create_task(self._receive(client)))
        full = await self.until(
            lambda: all(c.online >= self.members(c.room) for c in self.clients), timeout
        )
        assert full, "the clients did not all see their room full: " + ", ".join(
            f"{c.name} sees {sorted(c.online)}" for c in self.clients
        )

    def start(self) -> None:
        """Every client starts sending, spread evenly over one period."""
        loop = asyncio.get_running_loop()
        self._started = loop.time()
        period = 1.0 / self.rate
        for i, client in enumerate(self.clients):
            offset = period * i / len(self.clients)
            self._senders.append(asyncio.create_task(self._send(client, offset)))

    async def stop(self) -> None:
        """Stop sending (idempotent)."""
        if not self._stop.is_set():
            self._stop.set()
            self.duration = asyncio.get_running_loop().time() - self._started
        await asyncio.gather(*self._senders)

    async def close(self) -> None:
        for client in self.clients:
            client.closing = True
        for client in self.clients:
            with contextlib.suppress(Exception):
                await client.ws.close()
        await asyncio.gather(*self._receivers, return_exceptions=True)

    async def until(self, check: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``check()`` holds, re-checking at every frame; False after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._progress.clear()
            if check():
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), remaining)
                # Frames come in bursts: check once per burst, not once per frame.
                await asyncio.sleep(0.02)

    async def _receive(self, client: ChatClient) -> None:
        try:
            while True:
                message = await client.ws.receive()
                if message.type is aiohttp.WSMsgType.TEXT:
                    client.take(message.data)
                elif message.type is not aiohttp.WSMsgType.BINARY:
                    if not client.closing:
                        client.dropped = f"{message.type.name} {message.data!r} {message.extra!r}"
                    return
                self._progress.set()
        finally:
            self._progress.set()

    async def _send(self, client: ChatClient, offset: float) -> None:
        loop = asyncio.get_running_loop()
        first = loop.time() + offset
        number = 0
        while True:
            number += 1
            delay = first + (number - 1) / self.rate - loop.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
            else:
                await asyncio.sleep(0)  # behind schedule: still let the node run
            if self._stop.is_set():
                return
            if client.dropped is not None or client.ws.closed:
                client.unsent.append(number)
                continue
            text = json.dumps({"type": "message", "text": f"{client.name}:m{number}"})
            try:
                await client.ws.send_str(text)
            except (ConnectionError, aiohttp.ClientError, RuntimeError):
                client.unsent.append(number)
                continue
            client.sent.append(number)

    # -- the accounting ---------------------------------------------------------------------

    async def account(
        self, database_url: str, title: str, *, drain_timeout: float, deliver_timeout: float
    ) -> Report:
        """Stop sending, let the node drain (bounded), and compare the log with the clients."""
        await self.stop()
        loop = asyncio.get_running_loop()
        waited = loop.time()
        acknowledged = {(c.name, k) for c in self.clients if c.dropped is None for k in c.sent}
        drained_in: float | None = None
        log: ChatLog | None = None
        deadline = loop.time() + drain_timeout
        while True:
            log = await _read_log_if_up(database_url) or log
            if log is not None and acknowledged <= log.numbers.keys():
                drained_in = loop.time() - waited
                break
            if loop.time() >= deadline:
                break
            await asyncio.sleep(0.2)  # polling the table: a commit raises no event here
        delivered_in: float | None = None
        if log is not None:
            expected = _expected_deliveries(log, self.clients)
            started = loop.time()
            if await self.until(
                lambda: all(
                    expected[c.name] <= c.received_set for c in self.clients if not c.dropped
                ),
                deliver_timeout,
            ):
                delivered_in = loop.time() - started
        # The database is back by now: an error here is the accounting's own, and is raised.
        return _report(title, self, await read_log(database_url), drained_in, delivered_in)


@contextlib.asynccontextmanager
async def chatting(
    node: Node, *, clients: int = 20, rooms: int = 4, rate: float = 10.0
) -> AsyncIterator[ChatLoad]:
    """Chat on ``node`` from the moment every client has joined until the block ends."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        load = ChatLoad(session, str(node.client.make_url("/")), clients, rooms, rate)
        try:
            await load.join()
            load.start()
            yield load
        finally:
            await load.stop()
            await load.close()


# -- the log --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoggedMessage:
    """One ``message_received`` of a numbered message, with the room's members at its seq."""

    room: str
    seq: int
    sender: str
    number: int
    recipients: frozenset[str]


@dataclass
class ChatLog:
    """The numbered messages of every room, in each room's seq order."""

    messages: list[LoggedMessage]
    #: How many times each (sender, number) was logged.
    numbers: Counter[tuple[str, int]]
    #: Clients whose socket the log shows closed (or errored), by room.
    closed: dict[str, set[str]]


async def read_log(database_url: str) -> ChatLog:
    """The chat rooms' log as the ``events`` table holds it."""
    connection = await asyncpg.connect(database_url, timeout=5)
    try:
        rows = await connection.fetch(
            """
            SELECT o.name AS room, e.seq, e.type, e.data
              FROM events AS e JOIN objects AS o ON o.object_id = e.object_id
             WHERE o.binding = 'CHAT'
             ORDER BY o.name, e.seq
            """
        )
    finally:
        await connection.close()
    messages: list[LoggedMessage] = []
    closed: dict[str, set[str]] = defaultdict(set)
    open_sockets: dict[tuple[str, str], str] = {}  # (room, socket id) -> user
    for row in rows:
        room, data = row["room"], json.loads(row["data"])
        key = (room, data.get("socket_id", ""))
        if row["type"] == "websocket_accepted":
            users = [t.removeprefix("user:") for t in data["tags"] if t.startswith("user:")]
            open_sockets[key] = users[0] if users else key[1]
        elif row["type"] in ("websocket_closed", "websocket_error"):
            user = open_sockets.pop(key, None)
            if user is not None:
                closed[room].add(user)
        elif row["type"] == "message_received" and isinstance(data.get("text"), str):
            numbered = _NUMBERED.match(_text_of(data["text"]))
            if numbered is None:
                continue
            members = frozenset(user for (r, _), user in open_sockets.items() if r == room)
            messages.append(LoggedMessage(room, row["seq"], numbered[1], int(numbered[2]), members))
    numbers = Counter((m.sender, m.number) for m in messages)
    return ChatLog(messages, numbers, dict(closed))


async def _read_log_if_up(database_url: str) -> ChatLog | None:
    """``read_log``, or None while the database cannot be reached (after an outage)."""
    try:
        return await read_log(database_url)
    except _UNREACHABLE:
        return None


def _text_of(frame: str) -> str:
    """The ``text`` of a chat frame as the client sent it, or "" if it is not one."""
    try:
        data = json.loads(frame)
    except ValueError:
        return ""
    return str(data.get("text", "")) if isinstance(data, dict) else ""


def _expected_deliveries(
    log: ChatLog, clients: list[ChatClient]
) -> dict[str, set[tuple[str, int]]]:
    """Per client, the messages it must receive: those logged while it was in their room."""
    expected: dict[str, set[tuple[str, int]]] = {c.name: set() for c in clients}
    for message in log.messages:
        for member in message.recipients:
            expected.setdefault(member, set()).add((message.sender, message.number))
    return expected


# -- the report -----------------------------------------------------------------------------


@dataclass
class Inversions:
    """Messages that came after a higher-numbered message of the same sender."""

    count: int = 0
    #: The widest one seen: (where, sender, number, the higher number it came after).
    worst: tuple[str, str, int, int] | None = None

    def add(self, where: str, sender: str, numbers: Iterable[int]) -> None:
        highest = 0
        for number in numbers:
            if number < highest:
                self.count += 1
                if self.worst is None or highest - number > self.worst[3] - self.worst[2]:
                    self.worst = (where, sender, number, highest)
            else:
                highest = number

    def describe(self) -> str:
        if self.worst is None:
            return ""
        where, sender, number, highest = self.worst
        return f"worst: {sender}:m{number} after {sender}:m{highest} ({where})"


@dataclass
class Report:
    """The figures of one run; ``problems()`` names every broken guarantee."""

    title: str
    sent: int = 0
    unsent: int = 0
    logged: int = 0
    logged_twice: int = 0
    extra_copies: int = 0
    #: Sent on a socket that stayed open, never logged: acknowledged and lost.
    lost: list[str] = field(default_factory=list)
    #: Sent on a socket that dropped later, never logged.
    lost_around_drop: list[str] = field(default_factory=list)
    #: (message, client) deliveries missing for clients that stayed connected.
    undelivered: int = 0
    undelivered_messages: int = 0
    undelivered_examples: list[str] = field(default_factory=list)
    #: Deliveries missing for clients whose socket dropped.
    undelivered_to_dropped: int = 0
    delivered_twice: int = 0
    #: Message frames a client received whose message is not in the log.
    shown_unlogged: int = 0
    log_order: Inversions = field(default_factory=Inversions)
    client_order: Inversions = field(default_factory=Inversions)
    clients_with_inversions: int = 0
    dropped: list[str] = field(default_factory=list)
    #: Clients the log shows leaving although their socket stayed open.
    closed_in_log: list[str] = field(default_factory=list)
    error_frames: int = 0
    duration: float = 0.0
    drained_in: float | None = None
    delivered_in: float | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def problems(self) -> list[str]:
        """Every guarantee the run broke, in figures (empty when all held)."""
        found = []
        if self.logged_twice:
            found.append(
                f"{self.logged_twice} messages logged twice ({self.extra_copies} extra copies)"
            )
        if self.undelivered:
            found.append(
                f"{self.undelivered} deliveries of {self.undelivered_messages} logged messages "
                "never reached a client of their room "
                f"(e.g. {', '.join(self.undelivered_examples)})"
            )
        if self.lost:
            found.append(
                f"{len(self.lost)} messages sent on an open socket never logged "
                f"(e.g. {', '.join(self.lost[:_EXAMPLES])})"
            )
        if self.log_order.count:
            found.append(
                f"{self.log_order.count} order inversions in the log ({self.log_order.describe()})"
            )
        if self.client_order.count:
            found.append(
                f"{self.client_order.count} order inversions seen by "
                f"{self.clients_with_inversions} clients ({self.client_order.describe()})"
            )
        if self.delivered_twice:
            found.append(f"{self.delivered_twice} messages delivered twice to one client")
        if self.shown_unlogged:
            found.append(f"{self.shown_unlogged} message frames shown but never logged")
        if self.dropped:
            found.append(f"{len(self.dropped)} client sockets dropped: {'; '.join(self.dropped)}")
        if self.closed_in_log:
            found.append(
                f"the log closed the sockets of {len(self.closed_in_log)} connected clients"
            )
        if self.error_frames:
            found.append(f"{self.error_frames} error frames sent to clients")
        return found

    def table(self) -> str:
        def when(seconds: float | None, bound: str) -> str:
            return f"{seconds:.1f} s" if seconds is not None else f"not within {bound}"

        rows = [
            ("messages sent (socket open)", f"{self.sent}"),
            ("due while the socket was down", f"{self.unsent}"),
            ("logged (distinct)", f"{self.logged}"),
            ("logged twice", f"{self.logged_twice} ({self.extra_copies} extra copies)"),
            ("never logged, acknowledged", f"{len(self.lost)}"),
            ("never logged, socket dropped later", f"{len(self.lost_around_drop)}"),
            (
                "logged, not delivered",
                f"{self.undelivered} deliveries of {self.undelivered_messages} messages",
            ),
            ("not delivered to dropped clients", f"{self.undelivered_to_dropped}"),
            ("delivered twice", f"{self.delivered_twice}"),
            ("shown, never logged", f"{self.shown_unlogged}"),
            ("order inversions in the log", f"{self.log_order.count} {self.log_order.describe()}"),
            (
                "order inversions at clients",
                f"{self.client_order.count} at {self.clients_with_inversions} clients "
                f"{self.client_order.describe()}",
            ),
            ("client sockets dropped", f"{len(self.dropped)}"),
            ("sockets closed in the log", f"{len(self.closed_in_log)}"),
            ("error frames", f"{self.error_frames}"),
            ("load", f"{self.duration:.1f} s"),
            ("all sent messages logged after", when(self.drained_in, "the drain timeout")),
            ("all logged messages delivered after", when(self.delivered_in, "the timeout")),
            *self.extra.items(),
        ]
        width = max(len(label) for label, _ in rows)
        lines = [self.title, *(f"  {label:<{width}}  {value.rstrip()}" for label, value in rows)]
        return "\n".join(lines)


def _report(
    title: str,
    load: ChatLoad,
    log: ChatLog,
    drained_in: float | None,
    delivered_in: float | None,
) -> Report:
    report = Report(title, duration=load.duration, drained_in=drained_in, delivered_in=delivered_in)
    clients = load.clients
    dropped = {c.name for c in clients if c.dropped is not None}
    report.dropped = [f"{c.name}: {c.dropped}" for c in clients if c.dropped is not None]
    report.sent = sum(len(c.sent) for c in clients)
    report.unsent = sum(len(c.unsent) for c in clients)
    report.error_frames = sum(len(c.errors) for c in clients)
    report.logged = len(log.numbers)
    copies = [n for n in log.numbers.values() if n > 1]
    report.logged_twice, report.extra_copies = len(copies), sum(copies) - len(copies)
    for client in clients:
        for number in client.sent:
            if (client.name, number) not in log.numbers:
                lost = report.lost_around_drop if client.name in dropped else report.lost
                lost.append(f"{client.name}:m{number}")
    report.closed_in_log = sorted(
        name for room in log.closed.values() for name in room if name not in dropped
    )

    # Order in the log: each sender's first copies, in its room's seq order.
    first: dict[tuple[str, int], LoggedMessage] = {}
    by_sender: dict[str, list[int]] = defaultdict(list)
    for message in log.messages:
        key = (message.sender, message.number)
        if key not in first:
            first[key] = message
            by_sender[message.sender].append(message.number)
    for sender, numbers in by_sender.items():
        report.log_order.add("log", sender, numbers)

    _account_clients(report, clients, first, log, dropped)
    return report


def _account_clients(
    report: Report,
    clients: list[ChatClient],
    first: dict[tuple[str, int], LoggedMessage],
    log: ChatLog,
    dropped: set[str],
) -> None:
    """What each client saw: missing, repeated and reordered messages, per sender."""
    received = {c.name: c.received_set for c in clients}
    missing_messages: set[tuple[str, int]] = set()
    for key, message in first.items():
        for member in sorted(message.recipients):
            if member not in received or key in received[member]:
                continue
            if member in dropped:
                report.undelivered_to_dropped += 1
                continue
            report.undelivered += 1
            missing_messages.add(key)
            if len(report.undelivered_examples) < _EXAMPLES:
                report.undelivered_examples.append(f"{key[0]}:m{key[1]} to {member}")
    report.undelivered_messages = len(missing_messages)
    for client in clients:
        counts = Counter(client.received)
        report.delivered_twice += sum(n - 1 for n in counts.values() if n > 1)
        report.shown_unlogged += sum(1 for key in counts if key not in log.numbers)
        before = report.client_order.count
        seen: set[tuple[str, int]] = set()
        per_sender: dict[str, list[int]] = defaultdict(list)
        for key in client.received:
            if key not in seen:
                seen.add(key)
                per_sender[key[0]].append(key[1])
        for sender, numbers in per_sender.items():
            report.client_order.add(f"at {client.name}", sender, numbers)
        report.clients_with_inversions += report.client_order.count > before
