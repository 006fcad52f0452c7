"""The contract between the operator and the worker, in one place.

The operator writes a `ChunkSpec` into Redis (or a user writes one to a file), the
worker runs it and writes one `ManifestLine` per item. The Redis key layout both
sides share lives in `Keys`. Everything here is data: no I/O.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

ImageFormat = Literal["JPEG", "PNG", "WEBP", "GIF"]
DedupMode = Literal["none", "exact", "near"]
ListFormat = Literal["txt", "csv", "jsonl"]
OutputFormat = Literal["files", "webdataset", "parquet"]
ResizeMode = Literal["none", "keep_ratio", "keep_ratio_largest", "center_crop", "border"]
EncodeFormat = Literal["keep", "jpeg", "webp", "png"]
SplitName = Literal["train", "validation", "test"]
SPLITS: tuple[SplitName, ...] = ("train", "validation", "test")


class _Model(BaseModel):
    """camelCase on the wire (like the CRD), snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ExitCode(enum.IntEnum):
    DONE = 0  # the chunk ran; rejected images are data, not failure
    RETRYABLE = 1  # storage, Redis or a source list was unreachable
    PERMANENT = 2  # the spec itself is unusable; the Job's podFailurePolicy fails the Job
    TERMINATED = 143  # SIGTERM, after cleaning up


class Validation(_Model):
    min_width: int = Field(64, ge=1, le=65535)
    min_height: int = Field(64, ge=1, le=65535)
    max_bytes: int = Field(20 * 1024 * 1024, ge=1024, le=512 * 1024 * 1024)
    max_pixels: int = Field(
        89_478_485, ge=1, description="Decompression-bomb guard: width*height above this is rejected."
    )
    formats: list[ImageFormat] = Field(default_factory=lambda: ["JPEG", "PNG", "WEBP", "GIF"], min_length=1)
    dedup: DedupMode = "near"
    licenses: list[str] | None = Field(
        None, description="Allow-list of normalised licence ids (cc0, pdm, by, by-sa, ...); unset accepts any, "
        "set rejects items without an allowed licence (license_not_allowed).")

    @field_validator("licenses")
    @classmethod
    def _licence_ids(cls, value: list[str] | None) -> list[str] | None:
        """Stored as ids, so every chunk compares like with like; an entry that names no licence is an
        error here, not a silently empty allow-list later."""
        from chunk_worker import licenses  # pure, and it imports nothing from here

        try:
            allowed = licenses.normalise_allow_list(value)
        except licenses.UnknownLicense as exc:
            raise ValueError(str(exc)) from None
        return None if allowed is None else sorted(allowed)


class Resize(_Model):
    """img2dataset's resize modes: keep_ratio fits the smaller side to `size`, keep_ratio_largest the
    larger side, center_crop fills size x size and crops, border fits inside size x size and pads."""

    mode: ResizeMode = "none"
    size: int = Field(512, ge=16, le=8192)
    only_if_bigger: bool = Field(False, description="Never enlarge: images already within size are kept as they are.")


class Encode(_Model):
    format: EncodeFormat = Field("keep", description="keep re-encodes in the source format only when pixels change.")
    quality: int = Field(90, ge=1, le=100, description="JPEG/WebP quality.")


class Transform(_Model):
    resize: Resize = Field(default_factory=Resize)
    encode: Encode = Field(default_factory=Encode)


class Split(_Model):
    """Fractions of the dataset for validation and test; the rest is train. Deterministic from the
    content hash, so a re-run or a retry puts every image in the same split."""

    val: float = Field(0.0, ge=0.0, lt=1.0)
    test: float = Field(0.0, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _leaves_train(self) -> Split:
        if self.val + self.test >= 1.0:
            raise ValueError("split.val + split.test must be below 1 (the rest is train)")
        return self


class Attribution(_Model):
    """Licence and credit of one image, as its source states them (search providers, URL-list columns)."""

    license: str | None = Field(None, description="Normalised licence id (chunk_worker.licenses), e.g. by-sa.")
    license_url: str | None = None
    creator: str | None = None
    attribution: str | None = Field(None, description="Ready-made credit line, when the source gives one.")
    landing_url: str | None = Field(None, description="The page the image is shown on.")
    caption: str | None = Field(None, description="Title or caption; becomes the sample's .txt.")


class Item(Attribution):
    url: str = Field(min_length=1, max_length=8192)
    label: str = ""


class MetadataColumns(_Model):
    """csv/jsonl: the fields holding each row's licence and credit (all optional)."""

    license: str | None = None
    license_url: str | None = None
    creator: str | None = None
    attribution: str | None = None
    landing_url: str | None = None
    caption: str | None = None


class UrlList(_Model):
    """A remote list of image URLs, streamed line by line."""

    url: str = Field(min_length=1)
    format: ListFormat = "txt"
    column: str = Field("url", description="csv/jsonl: the field holding the image URL.")
    label_column: str | None = Field(None, description="csv/jsonl: a field overriding the source label.")
    metadata_columns: MetadataColumns = Field(default_factory=MetadataColumns)


class ListCountRequest(_Model):
    """What the operator asks a list-count Job: the job's URL lists by source position, each read up
    to its limit (the list's own `count` or maxImages) or whole. With `output` and `pages`, every list
    is also written there as pages (chunk_worker.list_pages) that the chunks read instead of the list."""

    lists: dict[int, UrlList] = Field(min_length=1)
    limits: dict[int, int] = Field(default_factory=dict, description="Items to read at most, by source position.")
    output: str | None = Field(None, description="file:///dir or azure://container/prefix the pages go to.")
    pages: str | None = Field(None, description="Where under the output: list_pages_root(job uid).")
    page_size: int = Field(10_000, ge=1, le=10_000, description="Items per page: the job's chunkSize.")

    @model_validator(mode="after")
    def _pages_need_an_output(self) -> ListCountRequest:
        if (self.output is None) != (self.pages is None):
            raise ValueError("output and pages go together")
        return self


class ListCounts(_Model):
    """What a list-count Job answers, in the job hash's LIST_COUNTS field: every list's item count (up
    to its limit), or why one could not be counted (`permanent`: the list itself is unusable, a retry
    reads the same). When the request named pages, they are all written before the answer."""

    counts: dict[int, int] = Field(default_factory=dict)
    error: str | None = None
    permanent: bool = False


LIST_COUNTS = "list_counts"
"""Field of the `job:<uid>` hash holding a ListCounts."""

LIST_PAGES = ".pixcrawler/lists"
"""Where under an output the list-count Job writes a job's URL lists as pages: not part of the dataset
(a name with a part starting with "." is never listed), removed by finalize."""


def list_pages_root(job_uid: str) -> str:
    return f"{LIST_PAGES}/{job_uid}"


def source_pages(root: str, position: int) -> str:
    """The pages of source `position`: `<root>/source-<n>/page-<p 06d>.jsonl`."""
    return f"{root}/source-{position}"


class Search(_Model):
    """A keyword search; the provider pages through results. Several queries make one stream: their
    results taken in turn, each image once (see chunk_worker.search)."""

    provider: str = "openverse"
    query: str | None = Field(None, min_length=1, max_length=512)
    queries: list[Annotated[str, Field(min_length=1, max_length=512)]] = Field(default_factory=list, max_length=32)
    limit: int = Field(1000, ge=1, le=1_000_000)
    endpoint: str | None = Field(None, description="Override of the provider's API base URL.")

    @model_validator(mode="after")
    def _has_a_query(self) -> Search:
        if self.query is None and not self.queries:
            raise ValueError("a search needs query or queries")
        return self

    @property
    def all_queries(self) -> list[str]:
        """`query` first, then `queries`, each once, in order: the order the merged stream takes them in."""
        return list(dict.fromkeys([*([self.query] if self.query is not None else []), *self.queries]))


class SourceSlice(_Model):
    """Items [start, start+count) of one remote source, all with `label`. A URL list slice with
    `pages` is read from the list's pages under the chunk's output (written once by the list-count
    Job), never from the list's URL; without, the list itself is streamed (a spec written by hand)."""

    label: str = ""
    url_list: UrlList | None = None
    search: Search | None = None
    start: int = Field(0, ge=0)
    count: int = Field(ge=1, le=10_000, description="At most the largest chunkSize.")
    pages: str | None = Field(None, description="The list's pages under the output: source_pages(...).")
    page_size: int | None = Field(None, ge=1, le=10_000, description="Items per page of `pages`.")

    @model_validator(mode="after")
    def _one_kind(self) -> SourceSlice:
        if (self.url_list is None) == (self.search is None):
            raise ValueError("a source slice needs exactly one of urlList or search")
        if self.pages is not None and (self.url_list is None or self.page_size is None):
            raise ValueError("pages belong to a urlList slice and need pageSize")
        return self


class Respect(_Model):
    """The opt-out signals a job honours; all of them unless the job turns one off."""

    robots_txt: bool = Field(True, description="robots.txt of each image's origin, for the worker's product token.")
    tdm_rep: bool = Field(True, description="TDMRep: the tdm-reservation header and /.well-known/tdmrep.json.")
    x_robots_tag: bool = Field(True, description="X-Robots-Tag noai / noimageai.")


class ChunkSpec(_Model):
    """One unit of work: ~500 images fetched, validated, de-duplicated and stored."""

    model_config = ConfigDict(extra="allow")

    job: str = Field(min_length=1, description="<namespace>/<name> of the DatasetJob.")
    job_uid: str | None = Field(None, description="Scopes dedup sets in Redis; defaults to `job`.")
    chunk: int = Field(ge=0, description="Index of this chunk within its job.")
    attempt: int = Field(1, ge=1)
    items: list[Item] = Field(default_factory=list)
    sources: list[SourceSlice] = Field(default_factory=list)
    validation: Validation = Field(default_factory=Validation)
    output: str | None = Field(None, description="file:///dir or azure://container/prefix.")
    format: OutputFormat = Field("files", description="files, webdataset (tar shards) or parquet (HF image struct).")
    transform: Transform = Field(default_factory=Transform)
    split: Split = Field(default_factory=Split)
    classes: list[str] = Field(
        default_factory=list,
        description="Class names in order: an item's class index (.cls) is its label's position, the same in "
        "every chunk of a job. Empty: no class index is recorded. An item whose label a non-empty list lacks is "
        "rejected (label_not_in_classes).")
    respect: Respect = Field(default_factory=Respect)

    @model_validator(mode="after")
    def _has_work(self) -> ChunkSpec:
        if not self.items and not self.sources:
            raise ValueError("a chunk needs items or sources")
        return self

    @property
    def scope(self) -> str:
        """The key dedup sets are scoped by: one DatasetJob."""
        return self.job_uid or self.job

    def dump(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


ItemStatus = Literal["ok", "rejected", "failed", "duplicate"]


class Reason(str, enum.Enum):
    """Why an item is not in the dataset. `http_<code>` reasons are built by `http_reason`."""

    TOO_SMALL = "too_small"
    NOT_AN_IMAGE = "not_an_image"
    FORMAT_NOT_ALLOWED = "format_not_allowed"
    TRUNCATED = "truncated"
    TOO_MANY_PIXELS = "too_many_pixels"
    TOO_LARGE = "too_large"
    BLOCKED_ADDRESS = "blocked_address"
    BLOCKED_SCHEME = "blocked_scheme"
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    OPT_OUT = "opt_out"  # X-Robots-Tag noai / noimageai
    ROBOTS_TXT_DISALLOWED = "robots_txt_disallowed"
    ROBOTS_TXT_UNREACHABLE = "robots_txt_unreachable"  # RFC 9309: a server or network error means complete disallow
    TDM_RESERVED = "tdm_reserved"  # TDMRep tdm-reservation 1, by header or tdmrep.json
    DUPLICATE = "duplicate"
    NEAR_DUPLICATE = "near_duplicate"
    BAD_URL = "bad_url"
    LICENSE_NOT_ALLOWED = "license_not_allowed"
    LABEL_NOT_IN_CLASSES = "label_not_in_classes"
    TRANSFORM_FAILED = "transform_failed"
    BAD_LIST_LINE = "bad_list_line"  # a URL-list line that gives no item; its url is <list>#L<line>
    ENCODED_BODY = "encoded_body"
    TOO_LARGE_TO_DECODE = "too_large_to_decode"  # decoding would need more than the worker's whole memory budget


REASON_VALUES = frozenset(reason.value for reason in Reason)


def http_reason(status: int) -> str:
    return f"http_{status}"


HTTP_CLASSES = ("http_4xx", "http_5xx", "http_other")


def metric_reason(reason: str) -> str:
    """A reason as a metric label: the Reason values, with HTTP statuses folded into their class
    (`http_4xx`, `http_5xx`, `http_other`), so the label set stays bounded."""
    if reason in HTTP_CLASSES:
        return reason
    if reason.startswith("http_"):
        code = reason.removeprefix("http_")
        return f"http_{code[0]}xx" if len(code) == 3 and code[0] in "45" and code.isdigit() else "http_other"
    return reason if reason in REASON_VALUES else "other"


def metric_reasons() -> list[str]:
    """Every value `metric_reason` can give."""
    return sorted({*REASON_VALUES, *HTTP_CLASSES, "other"})


OptOutSignal = Literal["x-robots-tag", "robots.txt", "tdm-reservation", "tdmrep.json"]


class OptOut(BaseModel):
    """Which signal refused an item and what it said: `value` is the header's value, the robots.txt
    Disallow line (or why the file was unreachable) or the tdmrep.json rule; `agent` the product token
    robots.txt was read for; `policy` the TDM policy URL a site gave."""

    model_config = ConfigDict(extra="forbid")

    signal: OptOutSignal
    value: str
    agent: str | None = None
    policy: str | None = None


class ManifestLine(BaseModel):
    """One line of `manifests/chunk-<05d>.jsonl`: what happened to one item.

    For accepted items it is also the sample's metadata record (the .json member of a WebDataset
    sample, the columns of the Parquet files and of the index): `sha256` and `phash` describe the
    downloaded bytes, `width`/`height`/`bytes`/`format` what was stored (after the transform),
    `original_width`/`original_height` the download; `stored_sha256` hashes the bytes stored (what a
    download of the dataset verifies: they differ from `sha256` once the transform re-encodes). `blob` is where the bytes are: the image file
    (files), the shard tar (webdataset) or the Parquet file (parquet); `key` names the sample in it."""

    model_config = ConfigDict(extra="forbid")

    url: str
    label: str = ""
    status: ItemStatus
    reason: str | None = None
    blob: str | None = None
    key: str | None = None
    split: SplitName | None = None
    cls: int | None = None
    sha256: str | None = None
    stored_sha256: str | None = None
    phash: str | None = None
    width: int | None = None
    height: int | None = None
    original_width: int | None = None
    original_height: int | None = None
    bytes: int | None = None
    format: ImageFormat | None = None
    license: str | None = None
    license_url: str | None = None
    creator: str | None = None
    attribution: str | None = None
    landing_url: str | None = None
    caption: str | None = None
    opt_out: OptOut | None = None


THUMBNAIL_MAX_CHARS = 16_384
"""A refused image's thumbnail, as a data: URI: a few KB of JPEG, bounded so a chunk's run record stays small."""


class RefusedSample(BaseModel):
    """A refused item whose bytes were downloaded and decoded (too small, a duplicate, a format not
    allowed), kept as a small thumbnail so the report can show what was refused."""

    model_config = ConfigDict(extra="forbid")

    url: str
    label: str = ""
    reason: str
    sha256: str | None = None
    phash: str | None = None
    width: int | None = None
    height: int | None = None
    license: str | None = None
    thumbnail: str = Field(max_length=THUMBNAIL_MAX_CHARS, pattern=r"^data:image/(jpeg|webp|png);base64,")


class ChunkRun(BaseModel):
    """`manifests/chunk-<05d>.run.json`, written just before the chunk's manifest: when the attempt
    that wrote the manifest ran, and a bounded sample of what it refused (REFUSED_PER_REASON per
    reason). Not an item list: finalize reads the manifests for that."""

    model_config = ConfigDict(extra="forbid")

    chunk: int = Field(ge=0)
    attempt: int = Field(1, ge=1)
    started_at: datetime
    finished_at: datetime
    seconds: float = Field(ge=0)
    refused: list[RefusedSample] = Field(default_factory=list, max_length=64)


class FinalizeSpec(_Model):
    """What `python -m chunk_worker finalize` needs besides the manifests themselves: the operator
    passes it to the finalize Job; run by hand, everything but the output may be left out."""

    job: str = Field("", description="<namespace>/<name>, the dataset's name in the card.")
    output: str | None = Field(None, description="file:///dir or azure://container/prefix the chunks wrote into.")
    format: OutputFormat | None = Field(None, description="Unset: found from the layout (shards/, data/ or images/).")
    chunks: int | None = Field(None, ge=1, description="Expected chunk count; unset: every manifest present.")
    classes: list[str] = Field(default_factory=list)
    split: Split = Field(default_factory=Split)
    transform: Transform = Field(default_factory=Transform)
    licenses: list[str] | None = None
    dedup: DedupMode | None = None
    sources: list[str] = Field(default_factory=list, description="One line per source, for the card.")
    list_pages: str | None = Field(None, description="The job's URL list pages (list_pages_root), removed last.")

    @field_validator("list_pages")
    @classmethod
    def _only_list_pages(cls, value: str | None) -> str | None:
        """What finalize deletes can only be list pages, never the dataset."""
        if value is not None and not re.fullmatch(rf"{re.escape(LIST_PAGES)}/[A-Za-z0-9][A-Za-z0-9._-]*", value):
            raise ValueError(f"must be {LIST_PAGES}/<job uid>")
        return value

    def dump(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


class ChunkState(str, enum.Enum):
    QUEUED = "queued"
    ADMITTED = "admitted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


COUNTERS = ("requested", "downloaded", "valid", "rejected", "failed", "duplicates", "uploaded", "bytes_uploaded")
"""Progress counters a worker keeps (absolute values, so a retry overwrites, never double counts)."""


PHASH_BANDS = 4
PHASH_BAND_BITS = 16
"""Near dedup splits the 64-bit pHash into this many bands of this many bits (chunk_worker.dedup)."""


class Keys:
    """The Redis keyspace (DESIGN.md), under a configurable prefix."""

    def __init__(self, prefix: str = "pc:") -> None:
        self.prefix = prefix

    @property
    def queue(self) -> str:
        return f"{self.prefix}queue"

    @property
    def admitted(self) -> str:
        return f"{self.prefix}admitted"

    @property
    def running(self) -> str:
        """zset chunk id -> when its Job was first seen live; left when the chunk is settled or retried."""
        return f"{self.prefix}running"

    @property
    def delayed(self) -> str:
        return f"{self.prefix}delayed"

    @property
    def fence(self) -> str:
        return f"{self.prefix}fence"

    @property
    def waiting(self) -> str:
        """zset job uid -> since when it has waited for an admission (its submission, then its last
        claim, or a chunk's return to the queue); the bounded wait is counted from it."""
        return f"{self.prefix}waiting"

    @property
    def promoted(self) -> str:
        """hash job uid -> its one chunk promoted above every tier, until that chunk is claimed."""
        return f"{self.prefix}promoted"

    def chunk(self, chunk_id: str) -> str:
        return f"{self.prefix}chunk:{chunk_id}"

    def job(self, uid: str) -> str:
        return f"{self.prefix}job:{uid}"

    def job_done(self, uid: str) -> str:
        """set of indices of chunks that succeeded."""
        return f"{self.prefix}job:{uid}:done"

    def job_failed(self, uid: str) -> str:
        """set of indices of chunks that failed for good."""
        return f"{self.prefix}job:{uid}:failed"

    def job_sha(self, uid: str) -> str:
        return f"{self.prefix}job:{uid}:sha"

    def job_phash_band(self, uid: str, band: int, value: int) -> str:
        return f"{self.prefix}job:{uid}:ph:{band}:{value}"

    def job_phash_bands(self, uid: str) -> Iterator[str]:
        """Every band set a near-dedup job can have: deleted by name, without a SCAN."""
        for band in range(PHASH_BANDS):
            for value in range(1 << PHASH_BAND_BITS):
                yield self.job_phash_band(uid, band, value)

    def job_pattern(self, uid: str) -> str:
        """Every job-level key of one job (for cleanup with SCAN)."""
        return f"{self.prefix}job:{uid}*"

    def chunk_pattern(self, uid: str) -> str:
        return f"{self.prefix}chunk:{uid}-*"

    def node(self, name: str) -> str:
        return f"{self.prefix}node:{name}"

    @property
    def nodes(self) -> str:
        """zset node name -> time of its latest report: the scheduler reads reports without a SCAN."""
        return f"{self.prefix}nodes"

    def pace(self, bucket: str) -> str:
        """hash of one search provider's token bucket (chunk_worker.pacing), shared by every worker."""
        return f"{self.prefix}pace:{bucket}"


def chunk_id(job_uid: str, index: int) -> str:
    return f"{job_uid}-{index:05d}"


def manifest_name(index: int) -> str:
    return f"manifests/chunk-{index:05d}.jsonl"


def run_name(index: int) -> str:
    return f"manifests/chunk-{index:05d}.run.json"


MANIFESTS_PREFIX = "manifests/"


def sample_key(chunk: int, position: int) -> str:
    """9 digits, no dots (WebDataset splits member names at the first dot): chunk, then the item's
    position in it (chunkSize is at most 10,000)."""
    return f"{chunk:05d}{position:04d}"


def shard_name(chunk: int) -> str:
    return f"shards/{chunk:05d}.tar"


def shard_metadata_name(chunk: int) -> str:
    """img2dataset's convention: a Parquet of the samples' metadata beside each tar."""
    return f"shards/{chunk:05d}.parquet"


def parquet_name(split: str, chunk: int) -> str:
    return f"data/{split}-{chunk:05d}.parquet"


INDEX_JSONL = "index.jsonl"
INDEX_PARQUET = "index.parquet"
CARD_NAME = "README.md"
ATTRIBUTION_NAME = "ATTRIBUTION.md"
REPORT_NAME = "report.html"


def chunk_json_schema() -> str:
    return json.dumps(ChunkSpec.model_json_schema(by_alias=True), indent=2)


EXTENSIONS: dict[str, str] = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}
CONTENT_TYPES: dict[str, str] = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}


def image_blob_name(sha256: str, image_format: str) -> str:
    """Content-addressed: a retry or a duplicate lands on the same name, so it never writes twice."""
    return f"images/{sha256[:2]}/{sha256}.{EXTENSIONS[image_format]}"


class ChunkField:
    """Field names of the `chunk:<id>` hash. Counters are stored as `n_<counter>`."""

    SPEC = "spec"
    STATE = "state"
    ATTEMPT = "attempt"
    K8S_JOB = "k8s_job"
    ADMITTED_AT = "admitted_at"
    STARTED_AT = "started_at"
    FINISHED_AT = "finished_at"
    OUTCOME = "outcome"  # what the worker says: done | error | terminated
    MESSAGE = "message"
    MANIFEST = "manifest"
    POD = "pod"
    FENCE = "fence"  # the leader epoch that claimed the chunk

    REASON_PREFIX = "r_"

    @staticmethod
    def counter(name: str) -> str:
        return f"n_{name}"

    @staticmethod
    def reason_counter(reason: str) -> str:
        """Items not stored, by `metric_reason`: bounded, so the operator can export it as a label."""
        return f"{ChunkField.REASON_PREFIX}{metric_reason(reason)}"
