"""The `files` layout: every image its own content-addressed object, images/<sha[:2]>/<sha>.<ext>."""

from __future__ import annotations

from chunk_worker.contract import CONTENT_TYPES, ManifestLine, image_blob_name
from chunk_worker.layouts.staged import check_sample
from chunk_worker.storage import Storage


class FilesLayout:
    """Named by the download's sha256 (what dedup and a retry recognise) with the stored format's
    extension, which a transform may have changed. Written at add(), so commit has nothing to do:
    a name already taken holds the same download, transformed by the same job spec."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def add(self, line: ManifestLine, data: bytes) -> ManifestLine:
        check_sample(line)
        blob = image_blob_name(line.sha256, line.format)
        self.storage.put_image(blob, data, CONTENT_TYPES[line.format])
        return line.model_copy(update={"blob": blob})

    def commit(self) -> None:
        pass
