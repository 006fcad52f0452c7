"""Small JPEG thumbnails as data: URIs, and the stored bytes of chosen samples read one at a time.

A thumbnail decodes at the smallest JPEG scale still large enough (Pillow's `draft`), so a big
photo never costs its full decode; an image whose header claims more than MAX_PIXELS is skipped
rather than decoded. Reading goes shard by shard (or file by file): only the chosen samples'
bytes are read into memory, one at a time."""

from __future__ import annotations

import base64
import io
import logging
import shutil
import tarfile
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from chunk_worker.contract import EXTENSIONS, OutputFormat
from chunk_worker.storage import Storage

log = logging.getLogger(__name__)

SIDE = 128
QUALITY = 60
MAX_DECODED_PIXELS = 4096 * 4096
"""Pixels a thumbnail may decode (after `draft`, which shrinks a JPEG up to 8 times per side on load):
64 MiB as RGBA at most. A larger image (a big PNG, a refused image's header claiming anything) gets
no thumbnail rather than a decode that size."""
PILLOW_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError, MemoryError,
                 Image.DecompressionBombError, Image.DecompressionBombWarning)
"""DecompressionBombWarning too: the worker makes it an error (chunk_worker.validate)."""


def thumbnail_uri(data: bytes, side: int = SIDE, max_decoded: int = MAX_DECODED_PIXELS) -> str | None:
    """A JPEG at most side x side as a data: URI, or None when the bytes do not decode or would
    decode to more than `max_decoded` pixels."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (side, side))  # JPEG only: the size below is then the reduced one
            if image.width * image.height > max_decoded:
                return None
            image.thumbnail((side, side))
            if image.mode in ("RGBA", "LA", "P"):
                image = image.convert("RGBA")
                flat = Image.new("RGB", image.size, "white")
                flat.paste(image, mask=image.getchannel("A"))
                image = flat
            elif image.mode != "RGB":
                image = image.convert("RGB")
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=QUALITY, optimize=True)
    except PILLOW_ERRORS:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@contextmanager
def _seekable(storage: Storage, name: str, workdir: Path) -> Iterator[BinaryIO | None]:
    """The object as a seekable file (None if it is gone): the storage's own reader when it seeks
    (file://), else a copy in `workdir`, removed after (azure://)."""
    reader = storage.open(name)
    if reader is None:
        yield None
        return
    with reader:
        if reader.seekable():
            yield reader
            return
        with tempfile.TemporaryFile(dir=workdir) as copy:
            shutil.copyfileobj(reader, copy, 1024 * 1024)
            copy.seek(0)
            yield copy


def _from_tar(handle: BinaryIO, wanted: dict[str, dict]) -> Iterator[tuple[dict, bytes]]:
    members = {f"{record['key']}.{EXTENSIONS[record['format']]}": record for record in wanted.values()}
    with tarfile.open(fileobj=handle, mode="r:") as tar:
        for member in tar:  # a seekable file: headers are read, other members' data skipped by seeking
            record = members.get(member.name)
            if record is not None and member.isfile():
                extracted = tar.extractfile(member)
                if extracted is not None:
                    yield record, extracted.read()


def _from_parquet(handle: BinaryIO, wanted: dict[str, dict]) -> Iterator[tuple[dict, bytes]]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(handle)
    for group in range(parquet.num_row_groups):
        keys = parquet.read_row_group(group, columns=["key"]).column("key").to_pylist()
        if not wanted.keys() & set(keys):
            continue
        table = parquet.read_row_group(group, columns=["key", "image"])
        for key, image in zip(table.column("key").to_pylist(), table.column("image").to_pylist()):
            if key in wanted and image and image.get("bytes"):
                yield wanted[key], image["bytes"]


def stored_bytes(storage: Storage, fmt: OutputFormat, records: Iterable[dict], workdir: Path
                 ) -> Iterator[tuple[dict, bytes]]:
    """(record, its stored bytes) for every record whose bytes are found, one object at a time, in
    blob order. A record without its object (removed since) is left out."""
    by_blob: dict[str, dict[str, dict]] = defaultdict(dict)
    for record in records:
        if record.get("blob"):
            by_blob[record["blob"]][record["key"] or record["sha256"]] = record
    for blob in sorted(by_blob):
        wanted = by_blob[blob]
        if fmt == "files":
            for record in wanted.values():
                data = storage.read(blob)
                if data is not None:
                    yield record, data
            continue
        try:
            with _seekable(storage, blob, workdir) as handle:
                if handle is not None:
                    yield from (_from_tar if fmt == "webdataset" else _from_parquet)(handle, wanted)
        except (tarfile.TarError, ValueError, EOFError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            log.warning("report: cannot read thumbnails from %s: %s", blob, exc)
