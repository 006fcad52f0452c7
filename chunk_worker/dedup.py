"""Exact and near-duplicate detection across all chunks of one DatasetJob.

Exact: the sha256 of the bytes. Near: a 64-bit perceptual hash within Hamming distance
NEAR_DISTANCE of one already kept. Candidates are found by splitting the hash into
BANDS bands of 16 bits: two hashes within distance 3 differ in at most 3 bands, so
(pigeonhole) they share at least one band exactly, and only hashes sharing a band
need comparing.

Each claim carries an `owner` (the chunk, optionally with the item's position): a
claim by the same owner never counts as a duplicate of itself, so a chunk retried
after a crash finds its own earlier claims and keeps them, while any other owner sees
them as duplicates.

Which copy of a duplicate pair is kept is first come, first kept. Within a chunk,
`ClaimSequencer` makes the claims in item order whatever order the downloads finish in,
so the lower position always wins and a re-run or a retry keeps the same images; across
chunks, the chunk that claims first keeps its copy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from redis import Redis, RedisError

from chunk_worker import errors
from chunk_worker.contract import PHASH_BAND_BITS, PHASH_BANDS, DedupMode, Keys, Reason
from chunk_worker.validate import ImageInfo

BANDS = PHASH_BANDS
BAND_BITS = PHASH_BAND_BITS
NEAR_DISTANCE = 3
DEFAULT_TTL_SECONDS = 14 * 24 * 3600


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def bands(phash: int) -> list[tuple[int, int]]:
    """(band index, 16-bit value) for each band, most significant first."""
    mask = (1 << BAND_BITS) - 1
    return [(i, (phash >> (BAND_BITS * (BANDS - 1 - i))) & mask) for i in range(BANDS)]


class Deduper(Protocol):
    mode: DedupMode

    def claim(self, info: ImageInfo, owner: str) -> str | None:
        """None if the image is new to the job (and is now recorded as `owner`'s), else why it is not."""
        ...


class NoDeduper:
    """dedup: none: every image is kept."""

    mode: DedupMode = "none"

    def claim(self, info: ImageInfo, owner: str) -> str | None:
        return None


class MemoryDeduper:
    """Standalone mode (no Redis): the same decisions, for one process, thread-safe."""

    def __init__(self, mode: DedupMode) -> None:
        self.mode = mode
        self._lock = threading.Lock()
        self._sha: dict[str, str] = {}
        self._bands: dict[tuple[int, int], list[tuple[int, str]]] = {}

    def claim(self, info: ImageInfo, owner: str) -> str | None:
        if self.mode == "none":
            return None
        with self._lock:
            holder = self._sha.get(info.sha256)
            if holder is not None:
                return None if holder == owner else Reason.DUPLICATE
            if self.mode == "near":
                for band in bands(info.phash):
                    for phash, other in self._bands.get(band, ()):
                        if other != owner and hamming(phash, info.phash) <= NEAR_DISTANCE:
                            return Reason.NEAR_DUPLICATE
                for band in bands(info.phash):
                    self._bands.setdefault(band, []).append((info.phash, owner))
            self._sha[info.sha256] = owner
            return None


_CLAIM_LUA = """
-- KEYS[1] sha hash; KEYS[2..5] band sets. ARGV: sha, owner, mode, ttl, phash hex, max distance.
-- Returns 0 kept (new, or the owner's own earlier claim), 1 duplicate, 2 near duplicate.
local sha, owner, mode, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local holder = redis.call('HGET', KEYS[1], sha)
if holder then
  if holder == owner then return 0 end
  return 1
end
if mode == 'near' then
  -- Lua numbers are doubles: compare the 64-bit hashes as four exact 16-bit pieces.
  local phash, limit = ARGV[5], tonumber(ARGV[6])
  local mine = {}
  for i = 0, 3 do mine[i] = tonumber(string.sub(phash, i * 4 + 1, i * 4 + 4), 16) end
  for k = 2, #KEYS do
    for _, member in ipairs(redis.call('SMEMBERS', KEYS[k])) do
      if string.sub(member, 18) ~= owner then
        local distance = 0
        for i = 0, 3 do
          local x = bit.bxor(mine[i], tonumber(string.sub(member, i * 4 + 1, i * 4 + 4), 16))
          while x ~= 0 do x = bit.band(x, x - 1); distance = distance + 1 end
        end
        if distance <= limit then return 2 end
      end
    end
  end
  for k = 2, #KEYS do
    redis.call('SADD', KEYS[k], phash .. ':' .. owner)
    if ttl > 0 then redis.call('EXPIRE', KEYS[k], ttl) end
  end
end
redis.call('HSET', KEYS[1], sha, owner)
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
return 0
"""
_OUTCOMES = {0: None, 1: Reason.DUPLICATE, 2: Reason.NEAR_DUPLICATE}


class RedisDeduper:
    """Shared by every worker of one job: the check and the insert are one Lua script, so two
    workers claiming the same or near-identical images at once cannot both win.

    Keys: `job:<scope>:sha` (hash sha256 -> owner) and `job:<scope>:ph:<band>:<value>` (sets of
    "<phash hex>:<owner>"). Each write refreshes a TTL (default 14 days) so an abandoned job's
    keys go away on their own; the operator deletes `Keys.job_pattern(scope)` on cleanup.
    """

    def __init__(
        self,
        client: Redis,
        keys: Keys,
        scope: str,
        mode: DedupMode = "near",
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
    ) -> None:
        self.client = client
        self.keys = keys
        self.scope = scope
        self.mode = mode
        self.ttl_seconds = ttl_seconds
        self._script = client.register_script(_CLAIM_LUA)

    def claim(self, info: ImageInfo, owner: str) -> str | None:
        if self.mode == "none":
            return None
        band_keys = [self.keys.job_phash_band(self.scope, i, v) for i, v in bands(info.phash)]
        try:
            outcome = self._script(
                keys=[self.keys.job_sha(self.scope), *band_keys],
                args=[info.sha256, owner, self.mode, self.ttl_seconds, info.phash_hex, NEAR_DISTANCE],
            )
        except RedisError as exc:
            raise errors.ProgressUnavailable(f"dedup claim failed: {exc}") from exc
        return _OUTCOMES[int(outcome)]


Payload = TypeVar("Payload")


@dataclass(frozen=True)
class Claimed(Generic[Payload]):
    """A claim made: `verdict` None means the image is `position`'s to keep, else why it is not
    (Reason.DUPLICATE, Reason.NEAR_DUPLICATE)."""

    position: int
    payload: Payload
    verdict: str | None


class ClaimSequencer(Generic[Payload]):
    """One chunk's claims, made in item order whatever order its items finish in.

    Every position from `first` on is submitted once, with the image it gave or with None (it was
    rejected or failed): a claim is made only once every lower position has been submitted, so the
    lower copy of a pair always claims first. Nothing waits: `submit` makes the claims whose turn
    has come, in order, and returns them (its own among them when its turn had come); a claim that
    has to wait is parked with its payload and returned to whichever later `submit` fills the last
    gap before it. A slow item therefore delays the claims behind it, never a thread. Claims are
    made under one lock, which is all that orders them (a claim is one in-memory check or one Lua
    call). With dedup none nothing is claimed, so nothing waits either."""

    def __init__(self, deduper: Deduper, owner: Callable[[int], str], first: int = 0) -> None:
        self.deduper = deduper
        self.owner = owner
        self._next = first
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[ImageInfo | None, Payload | None]] = {}

    def submit(self, position: int, info: ImageInfo | None, payload: Payload | None = None) -> list[Claimed[Payload]]:
        """Claim `info` for `position` when its turn has come, and every parked claim this submission
        releases; `info` None only marks the position done. Returns the claims made, lowest first."""
        if self.deduper.mode == "none":
            return [] if info is None else [Claimed(position, payload, None)]
        made: list[Claimed[Payload]] = []
        with self._lock:
            if position < self._next or position in self._waiting:
                raise ValueError(f"position {position} was submitted before")
            self._waiting[position] = (info, payload)
            while self._next in self._waiting:
                turn = self._next
                image, parked = self._waiting.pop(turn)
                if image is not None:
                    made.append(Claimed(turn, parked, self.deduper.claim(image, self.owner(turn))))
                self._next += 1
        return made

    @property
    def parked(self) -> int:
        """Submitted claims still waiting for a lower position."""
        with self._lock:
            return sum(1 for image, _ in self._waiting.values() if image is not None)


def make_deduper(
    mode: DedupMode,
    redis: Redis | None = None,
    keys: Keys | None = None,
    scope: str | None = None,
) -> Deduper:
    """Redis-backed when a client is given (in-cluster), in memory otherwise (standalone)."""
    if mode == "none":
        return NoDeduper()
    if redis is None:
        return MemoryDeduper(mode)
    if scope is None:
        raise ValueError("a Redis deduper needs the job scope")
    return RedisDeduper(redis, keys or Keys(), scope, mode)
