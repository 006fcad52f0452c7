"""Steps under way, per DatasetJob: a deletion's cleanup waits for them to land before it lists
what to remove, or a Job created or a queue written just after would outlive the cleanup."""

from __future__ import annotations

import asyncio
from collections import Counter


class InFlight:
    def __init__(self) -> None:
        self._count: Counter[str] = Counter()
        self._changed = asyncio.Condition()

    def __contains__(self, uid: str) -> bool:
        return uid in self._count

    def __len__(self) -> int:
        return len(self._count)

    def enter(self, uid: str) -> None:
        """Synchronous, so nothing runs between the caller's last check (not deleting) and the count."""
        self._count[uid] += 1

    async def leave(self, uid: str) -> None:
        async with self._changed:
            self._count[uid] -= 1
            if not self._count[uid]:
                del self._count[uid]
            self._changed.notify_all()

    async def settled(self, uid: str) -> None:
        """Returns once no step of `uid` is under way."""
        async with self._changed:
            await self._changed.wait_for(lambda: uid not in self._count)
