"""The DatasetJobs this operator knows, fed by kopf's watch: the scheduler and the status writer
read it instead of listing custom resources every cycle."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dataset_operator.pod_trouble import Trouble


@dataclass
class JobRef:
    uid: str
    namespace: str
    name: str
    spec: dict[str, Any]
    status: dict[str, Any]
    generation: int | None
    created: str
    deleting: bool = False
    waiting_reason: str | None = None  # set by the scheduler each cycle
    waiting_message: str = ""  # said instead of the reason's usual message
    extra_message: str = ""
    trouble: Trouble | None = None  # a stuck chunk pod's trouble, set by the scheduler each cycle

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def submitted_at(self) -> float:
        """The creation time orders chunks within a round; a ref without one sorts as submitted now."""
        try:
            return datetime.fromisoformat(self.created.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return time.time()

    @property
    def tier(self) -> str:
        return self.spec.get("tier", "free")

    @property
    def suspended(self) -> bool:
        return bool(self.spec.get("suspend", False))

    @property
    def parallelism(self) -> int | None:
        return self.spec.get("parallelism")

    @property
    def terminal(self) -> bool:
        return self.status.get("phase") in ("Succeeded", "Failed") or self.status.get("reason") == "InvalidSpec"


@dataclass
class Registry:
    jobs: dict[str, JobRef] = field(default_factory=dict)

    def observe(self, body: dict[str, Any]) -> JobRef:
        meta = body["metadata"]
        uid = meta["uid"]
        ref = self.jobs.get(uid)
        spec = copy.deepcopy(dict(body.get("spec") or {}))
        status = copy.deepcopy(dict(body.get("status") or {}))
        if ref is None:
            ref = JobRef(uid, meta["namespace"], meta["name"], spec, status, meta.get("generation"),
                         meta.get("creationTimestamp", ""))
            self.jobs[uid] = ref
        else:
            ref.spec, ref.generation = spec, meta.get("generation")
            ref.status.update(status)
        ref.deleting = bool(meta.get("deletionTimestamp"))
        return ref

    def forget(self, uid: str) -> None:
        """Marks the ref deleting too: a scheduler cycle already holding it must not start its Jobs."""
        ref = self.jobs.pop(uid, None)
        if ref is not None:
            ref.deleting = True
