"""A chunk's bounded sample of refused images, for the report: PER_REASON thumbnails per reason,
chosen by the rank of their URL (the same items on a re-run, whatever order downloads end in).

Only reasons whose bytes were downloaded and decoded have something to show: an image too small,
in a format the job does not allow, or a duplicate of one kept. A thumbnail is made only for an item
that enters the sample, so a chunk decodes a few dozen extra images at most, one at a time."""

from __future__ import annotations

import threading

from chunk_worker.contract import THUMBNAIL_MAX_CHARS, ManifestLine, Reason, RefusedSample
from chunk_worker.report.sample import Lowest, url_rank
from chunk_worker.report.thumbnails import thumbnail_uri

PER_REASON = 4
DECODED_PIXELS = 2048 * 2048
"""What a refused image's thumbnail may decode in a chunk (16 MiB as RGBA), one at a time: outside the
memory budget's reservations, so kept small (a JPEG up to 16384 x 16384 still fits, by `draft`)."""
SHOWN_REASONS = (Reason.TOO_SMALL.value, Reason.FORMAT_NOT_ALLOWED.value, Reason.DUPLICATE.value,
                 Reason.NEAR_DUPLICATE.value)


class RefusedSampler:
    """Thread-safe: item threads offer refused lines with their bytes as they happen."""

    def __init__(self, per_reason: int = PER_REASON) -> None:
        self._lock = threading.Lock()
        self._decoding = threading.Lock()
        self._chosen = {reason: Lowest[RefusedSample](per_reason) for reason in SHOWN_REASONS}

    def offer(self, line: ManifestLine, data: bytes) -> None:
        reason = str(getattr(line.reason, "value", line.reason))  # a Reason member hashes by its name, not its value
        chosen = self._chosen.get(reason)
        if chosen is None:
            return
        rank = url_rank(line.url)
        with self._lock:
            if not chosen.would_keep(rank):
                return
        with self._decoding:  # not under the sample's lock: other threads go on offering meanwhile
            thumbnail = thumbnail_uri(data, max_decoded=DECODED_PIXELS)
            if thumbnail is not None and len(thumbnail) > THUMBNAIL_MAX_CHARS:  # noise compresses badly: go smaller
                thumbnail = thumbnail_uri(data, side=48, max_decoded=DECODED_PIXELS)
        if thumbnail is None or len(thumbnail) > THUMBNAIL_MAX_CHARS:
            return
        sample = RefusedSample(url=line.url, label=line.label, reason=reason, sha256=line.sha256,
                               phash=line.phash, width=line.width, height=line.height, license=line.license,
                               thumbnail=thumbnail)
        with self._lock:
            chosen.offer(rank, sample)

    def samples(self) -> list[RefusedSample]:
        with self._lock:
            return [sample for reason in SHOWN_REASONS for sample in self._chosen[reason].chosen()]
