"""Rate limits on failed authentication and on identifier look-ups.

:class:`RateLimits` sits in front of the whole application, the direct decision path
included (:class:`credence.api.app.CredenceAPI` calls it first), and counts, per client
address and per presented key:

* **failed authentications**: responses with status 401 to requests that present an
  ``Authorization`` header. Once an address or a key is over its limit, every request
  from that address, or with that key, that presents a key is refused with 429 before
  the application sees it (a guess that is refused cannot be checked). Requests without
  a key are not refused: they cannot guess one.
* **identifier look-ups**: ``POST /v1/subjects/lookup`` and ``POST /v1/decisions`` whose
  body names the subject by ``identifier``. Each is counted when it arrives; over the
  limit it is refused with 429 and nothing is looked up.
* **refused portal sign-ins** (:meth:`RateLimits.sign_in_wait`,
  :meth:`RateLimits.sign_in_refused`, which the portal's sign-in page calls): per
  address and for all addresses together (settings ``sign_in_limit`` and
  ``sign_in_limit_overall``); over either, the page answers 429 and checks no key.

A refusal is the usual error envelope with code ``too_many_requests``, a
``Retry-After`` header (whole seconds) and ``details.retry_after_seconds``; it never
echoes the key.

Each limit counts over a sliding window (setting ``rate_limit_window_seconds``), kept
in tenths of it: at most ``limit`` events per address, and per key, within the window.
Counters live in this process's memory (each server process counts on its own) and are
bounded: a name whose events have all left the window is dropped, and past
:data:`MAX_NAMES` names per counter the least recently charged are dropped first. Keys
are kept only as a keyed hash (the secret is drawn per process), never as presented.

A failed authentication is counted when its 401 is sent, so requests already under way
when a limit is reached are answered as usual: the overshoot is at most the number of
requests one address or key has in flight at that moment, and it keeps the address or
key refused until those, too, have left the window.

The client address is the socket peer's, unless that peer is one of the trusted proxies
(setting ``trusted_proxies``): then it is the last address in ``X-Forwarded-For`` that
is not a trusted proxy. An IPv6 address counts by its /64 network (what one host is
usually given).
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import secrets
import time
from collections.abc import Awaitable, Callable

import orjson
from starlette.types import Message, Receive, Scope, Send

from credence.api.errors import envelope
from credence.settings import Settings

#: Most names (addresses or key hashes) one kind of counter keeps.
MAX_NAMES = 16_384

LOOKUP_PATH = "/v1/subjects/lookup"
DECISIONS_PATH = "/v1/decisions"

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class Window:
    """Counters by name over a sliding window: at most ``limit`` events per name within
    the last ``window`` seconds, counted in :attr:`SLOTS` slots of ``window / SLOTS``
    seconds (an event leaves the count between ``window`` and one slot short of it after
    it happened). Not thread-safe: used on the event loop only."""

    SLOTS = 10

    def __init__(self, limit: int, window: float, *, max_names: int = MAX_NAMES) -> None:
        self.limit = limit
        self.slot = window / self.SLOTS
        self.max_names = max_names
        # name -> [the slot it was last brought up to date in, then the counts of the
        # last SLOTS slots, slot k at index 1 + k % SLOTS]; least recently charged first.
        self._state: dict[bytes | str, list[int]] = {}

    def __len__(self) -> int:
        return len(self._state)

    def _entry(self, name: bytes | str, now: float) -> list[int] | None:
        """``name``'s counts, the slots that left the window cleared; None if it has none."""
        entry = self._state.get(name)
        if entry is None:
            return None
        current = int(now / self.slot)
        last = entry[0]
        if current - last >= self.SLOTS:
            entry[1:] = [0] * self.SLOTS
        else:
            for k in range(last + 1, current + 1):
                entry[1 + k % self.SLOTS] = 0
        entry[0] = current
        return entry

    def wait(self, name: bytes | str, now: float) -> float:
        """Seconds until ``name`` is under its limit again (0: it is now)."""
        entry = self._entry(name, now)
        if entry is None:
            return 0.0
        total = sum(entry) - entry[0]
        if total < self.limit:
            return 0.0
        current = entry[0]
        for k in range(current - self.SLOTS + 1, current + 1):
            total -= entry[1 + k % self.SLOTS]
            if total < self.limit:
                return (k + self.SLOTS) * self.slot - now
        return self.SLOTS * self.slot

    def charge(self, name: bytes | str, now: float) -> None:
        """Count one event of ``name`` now."""
        entry = self._entry(name, now)
        if entry is None:
            entry = [int(now / self.slot)] + [0] * self.SLOTS
        else:
            del self._state[name]
        entry[1 + entry[0] % self.SLOTS] += 1
        self._state[name] = entry  # now the most recently charged
        self._evict(now)

    def _evict(self, now: float) -> None:
        state = self._state
        # Least recently charged first: once its events have left the window it carries
        # nothing; the first that still counts was charged later than all those before.
        while state:
            first = next(iter(state))
            entry = self._entry(first, now)
            if entry is not None and sum(entry) - entry[0] > 0:
                break
            del state[first]
        while len(state) > self.max_names:
            del state[next(iter(state))]


def authorization(scope: Scope) -> bytes | None:
    """The value of the request's ``Authorization`` header, if any."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            found: bytes = value
            return found
    return None


#: The one name the overall count of refused sign-ins is kept under.
_ALL = "*"

FAILURES = "too many failed authentications from this address or with this key"
LOOKUPS = "too many identifier look-ups"


class RateLimits:
    """The ASGI guard described in the module doc: ``await limits(scope, receive, send,
    app)`` answers with 429 or hands the request to ``app``."""

    def __init__(self, settings: Settings) -> None:
        window = settings.rate_limit_window_seconds
        self.max_body = settings.max_body_bytes
        self.failures: tuple[Window, Window] | None = None
        if settings.failed_auth_limit > 0:
            self.failures = (
                Window(settings.failed_auth_limit, window),  # by address
                Window(settings.failed_auth_limit, window),  # by key
            )
        self.lookups: tuple[Window, Window] | None = None
        if settings.lookup_limit > 0:
            self.lookups = (
                Window(settings.lookup_limit, window),
                Window(settings.lookup_limit, window),
            )
        self.sign_ins: tuple[Window | None, Window | None] = (
            Window(settings.sign_in_limit, window) if settings.sign_in_limit > 0 else None,
            (
                Window(settings.sign_in_limit_overall, window)
                if settings.sign_in_limit_overall > 0
                else None
            ),
        )
        self.proxies = parse_proxies(settings.trusted_proxies)
        self._secret = secrets.token_bytes(16)

    async def __call__(self, scope: Scope, receive: Receive, send: Send, app: App) -> None:
        # Every request but the direct decision path's passes here (that path asks
        # :meth:`failed_auth_wait`, :meth:`lookup_wait` and :meth:`failed_auth` itself):
        # nothing is computed (the address, the key's hash) until a counter needs it.
        failures, lookups = self.failures, self.lookups
        if scope["type"] != "http" or (failures is None and lookups is None):
            await app(scope, receive, send)
            return
        token = authorization(scope)
        wait = self.failed_auth_wait(scope, token)
        if wait > 0:
            await refuse(scope, receive, send, wait, FAILURES)
            return
        if lookups is not None and scope["method"] == "POST":
            path = scope["path"]
            lookup = path == LOOKUP_PATH
            if path == DECISIONS_PATH:
                first = await receive()
                if first["type"] == "http.request" and not first.get("more_body", False):
                    body: bytes = first.get("body", b"")  # the usual case: one message
                    lookup = _names_identifier(body, complete=len(body) <= self.max_body)
                    receive = _replay_one(first, receive)
                else:
                    messages, lookup = await self._read_body(first, receive)
                    receive = _replay(messages, receive)
            if lookup:
                wait = self.lookup_wait(scope, token)
                if wait > 0:
                    await refuse(scope, receive, send, wait, LOOKUPS)
                    return
        if token is None or failures is None:
            await app(scope, receive, send)
            return
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, watch)
        finally:
            if status == 401:
                self.failed_auth(scope, token)

    def failing(self) -> bool:
        """Whether any authentication failed within the window (a counter has names)."""
        failures = self.failures
        return failures is not None and bool(failures[0] or failures[1])

    def failed_auth_wait(self, scope: Scope, token: bytes | None) -> float:
        """Seconds until a request presenting ``token`` (an ``Authorization`` header's
        value; None: none) from this address may be authenticated again (0: now).
        Nothing is computed while no authentication has failed."""
        failures = self.failures
        if failures is None or not (failures[0] or failures[1]) or token is None:
            return 0.0
        now = time.monotonic()
        return max(
            failures[0].wait(self.address(scope), now), failures[1].wait(self._hash(token), now)
        )

    def failed_auth(self, scope: Scope, token: bytes) -> None:
        """Count a failed authentication of ``token`` from this request's address."""
        failures = self.failures
        if failures is not None:
            now = time.monotonic()
            failures[0].charge(self.address(scope), now)
            failures[1].charge(self._hash(token), now)

    def lookup_wait(self, scope: Scope, token: bytes | None) -> float:
        """Count an identifier look-up by this request; if its address or key is over
        the limit, nothing is counted and the seconds to wait are returned (else 0)."""
        lookups = self.lookups
        if lookups is None:
            return 0.0
        now = time.monotonic()
        address = self.address(scope)
        key = None if token is None else self._hash(token)
        wait = lookups[0].wait(address, now)
        if key is not None:
            wait = max(wait, lookups[1].wait(key, now))
        if wait > 0:
            return wait
        lookups[0].charge(address, now)
        if key is not None:
            lookups[1].charge(key, now)
        return 0.0

    def sign_in_wait(self, scope: Scope) -> float:
        """Seconds until a portal sign-in from this request's address may be checked
        again (0: now): its address, or all addresses together, are over their limit of
        refused sign-ins."""
        by_address, overall = self.sign_ins
        now = time.monotonic()
        wait = 0.0
        if by_address is not None:
            wait = by_address.wait(self.address(scope), now)
        if overall is not None:
            wait = max(wait, overall.wait(_ALL, now))
        return wait

    def sign_in_refused(self, scope: Scope) -> None:
        """Count a refused portal sign-in from this request's address."""
        by_address, overall = self.sign_ins
        now = time.monotonic()
        if by_address is not None:
            by_address.charge(self.address(scope), now)
        if overall is not None:
            overall.charge(_ALL, now)

    def address(self, scope: Scope) -> str:
        """Who the request counts against: see the module doc."""
        client = scope.get("client")
        peer = str(client[0]) if client else ""
        if not self.proxies or not _within(peer, self.proxies):
            return _by_host(peer)
        hops: list[str] = []
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                hops.extend(h.strip() for h in value.decode("latin-1").split(","))
        hops = [h for h in hops if h]
        for hop in reversed(hops):
            if not _within(hop, self.proxies):
                return _by_host(hop)
        return _by_host(hops[0] if hops else peer)

    def _hash(self, authorization: bytes) -> bytes:
        """A keyed hash of the key in an ``Authorization`` header (of the whole header
        if it names no scheme)."""
        token = authorization.partition(b" ")[2].strip() or authorization.strip()
        return hashlib.blake2b(token, key=self._secret, digest_size=16).digest()

    async def _read_body(self, first: Message, receive: Receive) -> tuple[list[Message], bool]:
        """A body in several messages: the messages (read up to the body limit, to replay
        to the app) and whether the body names the subject by identifier (see
        :func:`_names_identifier`)."""
        messages: list[Message] = [first]
        chunks: list[bytes] = []
        size = 0
        complete = False
        message = first
        while message["type"] == "http.request":
            chunk: bytes = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_body:
                break
            if not message.get("more_body", False):
                complete = True
                break
            message = await receive()
            messages.append(message)
        return messages, _names_identifier(b"".join(chunks), complete=complete)


def _names_identifier(body: bytes, *, complete: bool) -> bool:
    """Whether a decision request's body (``complete``, or cut short at the body limit)
    names its subject by ``identifier``. Anything the app might still read as naming
    one counts: a body that is not JSON, or is cut short, if it could spell the key
    ``identifier`` (outright or with escapes)."""
    if b"identifier" not in body and b"\\u" not in body:
        return False
    if not complete:
        return True
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return True
    return not isinstance(parsed, dict) or parsed.get("identifier") is not None


def parse_proxies(text: str) -> tuple[IpNetwork, ...]:
    """The trusted proxies: comma-separated addresses or networks (``10.0.0.0/8``)."""
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()
    )


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _within(host: str, networks: tuple[IpNetwork, ...]) -> bool:
    ip = _ip(host)
    return ip is not None and any(ip in net for net in networks)


def _by_host(host: str) -> str:
    """The name an address counts under: an IPv4 address itself, an IPv6 address's /64;
    anything else (a test client's name) as given, cut short."""
    if ":" not in host:
        return host[:64]
    ip = _ip(host)
    if ip is None:
        return host[:64]
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip)
    return str(ipaddress.IPv6Network((ip, 64), strict=False))


async def refuse(scope: Scope, receive: Receive, send: Send, wait: float, what: str) -> None:
    """Answer 429 with ``Retry-After``: ``what`` was refused for ``wait`` seconds."""
    seconds = max(1, math.ceil(wait))
    response = envelope(
        429,
        "too_many_requests",
        f"{what}; retry after {seconds} s",
        {"retry_after_seconds": seconds},
    )
    response.headers["Retry-After"] = str(seconds)
    await response(scope, receive, send)


def _replay_one(message: Message, receive: Receive) -> Receive:
    """A ``receive`` that hands ``message`` over again, then listens as before."""
    pending: Message | None = message

    async def replay() -> Message:
        nonlocal pending
        if pending is not None:
            given, pending = pending, None
            return given
        return await receive()

    return replay


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that hands ``messages`` over again, then listens as before."""
    pending = iter(messages)

    async def replay() -> Message:
        for message in pending:
            return message
        return await receive()

    return replay
