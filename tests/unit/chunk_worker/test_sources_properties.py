"""Properties of the URL-list parsers over generated lists: whatever the bytes, line endings,
nesting or encoding, parsing never raises (a csv header lacking the column is the one SpecError),
and every line that is not blank, a comment or the header comes out once, in order, as an item
or as a rejected line naming it."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chunk_worker.contract import Item, UrlList
from chunk_worker.errors import SpecError
from chunk_worker.listlines import MAX_LINE
from chunk_worker.sources import RejectedLine, list_items

PROPERTIES = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LIST = "https://lists.example.org/list"
TERMINATORS = st.sampled_from([b"\n", b"\r\n", b"\r"])
ENCODINGS = st.sampled_from(["utf-8", "utf-16", "utf-16-le", "latin-1", "cp1252", "utf-32"])


class Good(bytes):
    """A line that must give an item with `url`."""

    url: str


def good(url: str, line: str) -> Good:
    value = Good(line.encode())
    value.url = url
    return value


URLS = st.integers(0, 10**6).map(lambda n: f"https://img.example.org/{n}.jpg")
BLANKS = st.sampled_from([b"", b" ", b"\t", b"  \t "])


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def one_line(content: bytes) -> bool:
    return b"\r" not in content and b"\n" not in content


HOSTILE = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda text, encoding: text.encode(encoding, "replace"), st.text(max_size=80), ENCODINGS),
    st.sampled_from([nested(10), nested(1_500), nested(30_000), b'{"url": ' + nested(5_000) + b"}"]),
    st.builds(lambda head, tail: head + b"\0" + tail, st.binary(max_size=20), st.binary(max_size=20)),
    st.just(b"h" * (MAX_LINE + 1)),
    st.sampled_from([b"\xff\xfe", b"\xef\xbb\xbf", b"\xc3", b"\xed\xa0\x80", b'"open, quote', b'a,"b"c,d']),
).filter(one_line)


def blank(content: bytes, first: bool, fmt: str) -> bool:
    """Lines the parsers pass over without an index (the property's own definition)."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if "\0" in text or len(content) > MAX_LINE:
        return False
    text = text.removeprefix("\ufeff") if first else text
    return not text.strip() or (fmt == "txt" and text.strip().startswith("#"))


def lines_of(fmt: str) -> st.SearchStrategy[list[bytes]]:
    wrap = {"txt": lambda url: url, "csv": lambda url: f"{url},x",
            "jsonl": lambda url: json.dumps({"url": url, "label": "x"})}[fmt]
    goods = URLS.map(lambda url: good(url, wrap(url)))
    return st.lists(st.one_of(goods, BLANKS, HOSTILE), max_size=25)


@st.composite
def lists(draw, fmt: str) -> tuple[list[bytes], list[bytes]]:
    """(the list's lines, the byte chunks it arrives in)."""
    lines = ([b"url,label"] if fmt == "csv" else []) + draw(lines_of(fmt))
    ends = [draw(TERMINATORS) for _ in lines]
    if lines and draw(st.booleans()):
        ends[-1] = b""  # no newline at the end
    for n in range(1, len(lines)):
        if ends[n - 1] == b"\r" and lines[n] == b"" and ends[n].startswith(b"\n"):
            ends[n - 1] = b"\n"  # CR, nothing, LF would be one CRLF: one line fewer than drawn
    body = b"".join(line + end for line, end in zip(lines, ends))
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=6)))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)])]
    if ends and ends[-1] == b"" and lines[-1] == b"":
        lines = lines[:-1]  # an empty last line without a newline is no line at all
    return lines, chunks


def check(fmt: str, lines: list[bytes], chunks: list[bytes]) -> None:
    items = list(list_items(chunks, UrlList(url=f"{LIST}.{fmt}", format=fmt, label_column="label"), "cat"))
    start = 1 if fmt == "csv" else 0  # the header
    expected = [(number, line) for number, line in enumerate(lines, 1)
                if number > start and not blank(line, number == 1, fmt)]
    assert len(items) == len(expected)
    for item, (number, line) in zip(items, expected):
        assert isinstance(item, Item)
        if isinstance(item, RejectedLine):
            assert (item.line, item.url, item.label) == (number, f"{LIST}.{fmt}#L{number}", "cat")
            assert not isinstance(line, Good), item.problem
        elif isinstance(line, Good):
            assert item.url == line.url


@PROPERTIES
@given(lists("txt"))
def test_every_txt_line_is_an_item_or_a_rejected_line(generated):
    check("txt", *generated)


@PROPERTIES
@given(lists("csv"))
def test_every_csv_row_is_an_item_or_a_rejected_line(generated):
    check("csv", *generated)


@PROPERTIES
@given(lists("jsonl"))
def test_every_jsonl_line_is_an_item_or_a_rejected_line(generated):
    check("jsonl", *generated)


@PROPERTIES
@given(st.binary(max_size=2000), st.sampled_from(["txt", "csv", "jsonl"]))
def test_arbitrary_bytes_never_raise_but_a_csv_header_without_the_column(body, fmt):
    try:
        items = list(list_items([body], UrlList(url=f"{LIST}.{fmt}", format=fmt), "cat"))
    except SpecError as exc:
        assert fmt == "csv" and "header" in str(exc) or "no column 'url'" in str(exc)
        return
    numbers = [item.line for item in items if isinstance(item, RejectedLine)]
    assert numbers == sorted(set(numbers))
    assert all(number <= body.count(b"\n") + body.count(b"\r") + 1 for number in numbers)
