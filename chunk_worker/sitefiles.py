"""Each origin's robots.txt and tdmrep.json, fetched once per chunk while the chunk keeps them.

A chunk holds one `SiteFiles` (through its Fetcher): the first item from an origin fetches the files,
through the same fetcher (address policy, byte cap, deadline), while other items from that origin
wait for it; later items read the cache (the ORIGINS_KEPT origins asked most recently). The
decisions are chunk_worker.optouts'."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from chunk_worker import optouts
from chunk_worker.contract import Respect
from chunk_worker.logs import fields
from chunk_worker.optouts import Refusal, Robots, TdmRule

log = logging.getLogger(__name__)

ROBOTS_PATH = "/robots.txt"
TDMREP_PATH = "/.well-known/tdmrep.json"


@dataclass(frozen=True)
class SiteFile:
    """What fetching one site file gave: a status and body, or a failure reason (no status when no
    response came at all; `redirected` when it came on a hop after a redirect)."""

    status: int | None = None
    body: bytes | None = None
    truncated: bool = False
    failure: str | None = None
    redirected: bool = False


SiteFileFetch = Callable[[str, int], SiteFile]
"""(url, byte cap) -> SiteFile; never raises for a network, HTTP or policy failure."""


class _Entry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loaded = False
        self.value: object = None


ORIGINS_KEPT = 64
"""Origins whose files a chunk keeps at once, the least recently asked dropped first (and fetched
again if asked again): a file may hold up to 500 KiB, so keeping every origin of a chunk whose
items each come from another site could take hundreds of MiB."""


class OriginCache:
    """A value per origin, loaded once while kept: concurrent askers for one origin wait for the first."""

    def __init__(self, load: Callable[[str], object], capacity: int = ORIGINS_KEPT) -> None:
        self._load = load
        self._capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def get(self, origin: str) -> object:
        with self._lock:
            entry = self._entries.setdefault(origin, _Entry())
            self._entries.move_to_end(origin)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)
        with entry.lock:
            if not entry.loaded:
                entry.value = self._load(origin)
                entry.loaded = True
            return entry.value


class SiteFiles:
    """The opt-out checks of one chunk, backed by each origin's files."""

    def __init__(self, fetch: SiteFileFetch, respect: Respect, agent: str) -> None:
        self.respect = respect
        self.agent = agent
        self._fetch = fetch
        self._robots = OriginCache(self._load_robots)
        self._tdmrep = OriginCache(self._load_tdmrep)

    def before_request(self, url: str) -> Refusal | None:
        """Checked before each request of an image (every redirect hop): robots.txt. The origin's
        tdmrep.json is loaded here too, while this thread holds no connection slot for the host: a
        thread loading it after its image's headers could wait for a slot held by another image
        waiting for the same file."""
        origin = optouts.origin_of(url)
        if self.respect.tdm_rep:
            self._tdmrep.get(origin)
        if not self.respect.robots_txt:
            return None
        robots: Robots = self._robots.get(origin)  # type: ignore[assignment]
        return optouts.robots_refusal(robots, url, self.agent)

    def after_headers(self, url: str, headers: Mapping[str, str]) -> Refusal | None:
        """Checked on the final response's headers, before its body is read: X-Robots-Tag, TDMRep
        (the file already loaded by `before_request` for this URL)."""
        rule = None
        if self.respect.tdm_rep and optouts.tdm_reservation(headers.get("tdm-reservation")) is None:
            rules: list[TdmRule] = self._tdmrep.get(optouts.origin_of(url))  # type: ignore[assignment]
            rule = optouts.tdmrep_rule_for(rules, url)
        return optouts.response_refusal(headers, self.respect, rule)

    def _load_robots(self, origin: str) -> Robots:
        got = self._fetch(origin + ROBOTS_PATH, optouts.SITE_FILE_MAX_BYTES)
        robots = optouts.robots_from_response(got.status, got.body, got.truncated, got.failure, got.redirected)
        if robots.unreachable is not None:
            log.warning("robots.txt unreachable: the origin's images are not fetched",
                        extra=fields(origin=origin, problem=robots.unreachable))
        return robots

    def _load_tdmrep(self, origin: str) -> list[TdmRule]:
        got = self._fetch(origin + TDMREP_PATH, optouts.SITE_FILE_MAX_BYTES)
        if got.truncated:
            log.warning("tdmrep.json over the size cap is ignored", extra=fields(origin=origin))
            return []
        try:
            return optouts.tdmrep_from_response(got.status, got.body, got.failure)
        except optouts.TdmRepInvalid as exc:
            log.warning("tdmrep.json is invalid and ignored", extra=fields(origin=origin, problem=str(exc)))
            return []
