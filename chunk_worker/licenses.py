"""Licence identifiers: one vocabulary for what providers, URL-list columns and allow-lists say.

The ids are Openverse's licence codes (its API filters by them as they are). Anything this module
cannot read as exactly one of them normalises to None, never to a guess and never to the string as
given: an item with an unreadable licence therefore has no licence, and no allow-list accepts it.
Allow-lists are stricter still: an entry that is not a licence is an error, so a typo can neither
let everything through nor silently reject a whole dataset.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

PUBLIC_DOMAIN = ("cc0", "pdm")
CC_LICENSES = ("by", "by-sa", "by-nc", "by-nd", "by-nc-sa", "by-nc-nd")
RETIRED = ("sampling+", "nc-sampling+")
"""Retired by Creative Commons, still carried by older works (Openverse lists them)."""
LICENSES: tuple[str, ...] = PUBLIC_DOMAIN + CC_LICENSES + RETIRED

_ELEMENTS: dict[frozenset[str], str] = {
    frozenset({"by"}): "by",
    frozenset({"by", "sa"}): "by-sa",
    frozenset({"by", "nc"}): "by-nc",
    frozenset({"by", "nd"}): "by-nd",
    frozenset({"by", "nc", "sa"}): "by-nc-sa",
    frozenset({"by", "nc", "nd"}): "by-nc-nd",
    frozenset({"sampling+"}): "sampling+",
    frozenset({"nc", "sampling+"}): "nc-sampling+",
}
_WORDS = {"attribution": "by", "sharealike": "sa", "noncommercial": "nc", "noderivatives": "nd", "noderivs": "nd"}
_PUBLIC_DOMAIN_NAMES = {
    "cc0": "cc0", "zero": "cc0", "cc0publicdomaindedication": "cc0", "publicdomaindedication": "cc0",
    "publicdomainzero": "cc0", "pdm": "pdm", "publicdomain": "pdm", "publicdomainmark": "pdm",
}
_FILLER = {"cc", "creative", "commons", "license", "licence", "licensed", "international", "unported", "generic",
           "universal"}
_VERSION = re.compile(r"^v?(\d+)(?:\.(\d+))?$")
_JURISDICTION = re.compile(r"^(?:[a-z]{2}|igo|scotland)$")
_JOINED = [
    (re.compile(r"share[\s_-]*alike"), "sharealike"),
    (re.compile(r"non[\s_-]*commercial"), "noncommercial"),
    (re.compile(r"no[\s_-]*deriv(ative)?s"), "noderivatives"),
    (re.compile(r"public[\s_-]*domain"), "publicdomain"),
    (re.compile(r"sampling[\s_-]*(\+|plus)"), "sampling+"),
    (re.compile(r"\bcc[\s_-]*(0|zero)\b"), "cc0"),
]
_DEED = re.compile(r"^(?:legalcode|deed)(?:\.[a-z-]+)?$|^rdf$")


class License(NamedTuple):
    id: str
    version: str | None


class UnknownLicense(ValueError):
    """An allow-list entry that is not a licence id or a recognisable spelling of one."""


@functools.lru_cache(maxsize=4096)
def parse(value: str | None) -> License | None:
    """A licence name, code or Creative Commons URL as the id and, where it says, the version.

    Reads "CC BY-SA 4.0", "cc-by-sa", "by-sa", "CC-BY-SA-3.0-DE" (SPDX), "Attribution-ShareAlike 4.0
    International", "CC0 1.0", "Public Domain Mark", "publicdomain" and deed URLs such as
    https://creativecommons.org/licenses/by-sa/4.0/ or .../publicdomain/zero/1.0/; lists repeat the
    same few strings, hence the cache."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if not text:
        return None
    if "://" in text or text.startswith(("creativecommons.org/", "www.creativecommons.org/")):
        return _parse_url(text)
    return _parse_name(text)


def normalise(value: str | None) -> str | None:
    """The licence id of `value`, or None when it names no licence of the vocabulary."""
    parsed = parse(value)
    return parsed.id if parsed else None


class Resolved(NamedTuple):
    license: str | None
    license_url: str | None


def resolve(name: str | None, url: str | None = None, version: str | None = None) -> Resolved:
    """The licence id and deed URL of an item from what its source states: a licence name or code,
    a licence URL, a version, any of them missing.

    The id comes from the name or, failing that, the URL; a name and a URL naming different
    licences leave it unknown (the item could be under either). A stated URL is kept as given;
    without one, the canonical deed is derived where the version is known."""
    if url is None and name is not None and "://" in name:
        url = name
    stated_url = url.strip() if isinstance(url, str) and url.strip().lower().startswith(("http://", "https://")) else None
    named = parse(name)
    linked = parse(stated_url)
    if named and linked and named.id != linked.id:
        return Resolved(None, stated_url)
    found = named or linked
    if found is None:
        return Resolved(None, stated_url)
    version = version or found.version or (linked.version if linked else None)
    return Resolved(found.id, stated_url or license_url(found.id, version))


def requires_attribution(license_id: str | None) -> bool:
    """Every Creative Commons licence asks for credit; CC0 and the Public Domain Mark do not, and
    without a readable licence there is no term to honour (nor, usually, a creator to name)."""
    normalised = normalise(license_id)
    return normalised in CC_LICENSES or normalised in RETIRED


def license_url(license_id: str, version: str | None = None) -> str | None:
    """The canonical deed URL. A versioned licence without its version gets None: guessing 4.0
    could state terms the work was never offered under."""
    if license_id == "cc0":
        return "https://creativecommons.org/publicdomain/zero/1.0/"
    if license_id == "pdm":
        return "https://creativecommons.org/publicdomain/mark/1.0/"
    if license_id in RETIRED:
        return f"https://creativecommons.org/licenses/{license_id}/1.0/"
    if license_id in CC_LICENSES and version:
        return f"https://creativecommons.org/licenses/{license_id}/{version}/"
    return None


def normalise_allow_list(values: Iterable[str] | str | None) -> frozenset[str] | None:
    """An allow-list as ids: `[cc0, pdm, by, by-sa]`, `["CC-BY"]` or one comma-separated string.

    None stays None (no list: any licence, or none, is accepted). Raises UnknownLicense naming
    every entry it cannot read."""
    if values is None:
        return None
    entries = values.split(",") if isinstance(values, str) else list(values)
    allowed: set[str] = set()
    unknown: list[str] = []
    for entry in entries:
        license_id = normalise(entry) if isinstance(entry, str) else None
        if license_id is None:
            unknown.append(repr(entry))
        else:
            allowed.add(license_id)
    if unknown:
        raise UnknownLicense(f"unknown licence(s) in the allow-list: {', '.join(unknown)}; "
                             f"known ids: {', '.join(LICENSES)}")
    return frozenset(allowed)


def is_allowed(license_id: str | None, allow_list: Iterable[str] | None) -> bool:
    """Whether an item with this licence may enter the dataset. No allow-list accepts everything;
    with one, an item without a readable licence is refused. Both sides are normalised, so inline
    items and hand-written lists may use any spelling `parse` reads; a frozenset is taken to be
    `normalise_allow_list`'s result already."""
    if allow_list is None:
        return True
    allowed = allow_list if isinstance(allow_list, frozenset) else _allowed(tuple(allow_list))
    return normalise(license_id) in allowed


@functools.lru_cache(maxsize=64)
def _allowed(values: tuple[str, ...]) -> frozenset[str]:
    allowed = normalise_allow_list(values)
    assert allowed is not None
    return allowed


def _parse_name(text: str) -> License | None:
    for pattern, joined in _JOINED:
        text = pattern.sub(joined, text)
    tokens = [token for token in re.split(r"[\s_/,;:()\-]+", text) if token]
    elements: list[str] = []
    version: str | None = None
    after_version = False
    for token in tokens:
        match = _VERSION.match(token)
        if match:
            if version is not None:
                return None
            version = f"{match.group(1)}.{match.group(2) or 0}"
            after_version = True
            continue
        if after_version and _JURISDICTION.match(token) and token not in ("by", "sa", "nc", "nd"):
            after_version = False
            continue
        after_version = False
        if token in _FILLER:
            continue
        elements.append(_WORDS.get(token, token))
    if not elements:
        return None
    pd = _PUBLIC_DOMAIN_NAMES.get("".join(elements))
    if pd is not None:
        return License(pd, "1.0")
    if len(set(elements)) != len(elements):
        return None
    license_id = _ELEMENTS.get(frozenset(elements))
    if license_id is None:
        return None
    return License(license_id, "1.0" if license_id in RETIRED else version)


def _parse_url(text: str) -> License | None:
    parts = urlsplit(text if "://" in text else "https://" + text)
    host = (parts.hostname or "").removeprefix("www.")
    if parts.scheme not in ("http", "https") or host != "creativecommons.org":
        return None
    segments = [unquote(segment) for segment in parts.path.split("/") if segment]
    if segments and _DEED.match(segments[-1]):
        segments.pop()
    if len(segments) >= 2 and segments[0] == "publicdomain":
        pd = {"zero": "cc0", "mark": "pdm"}.get(segments[1])
        return License(pd, segments[2] if len(segments) > 2 else "1.0") if pd else None
    if len(segments) >= 2 and segments[0] == "licenses" and segments[1] in CC_LICENSES + RETIRED:
        version = segments[2] if len(segments) > 2 and _VERSION.match(segments[2]) else None
        if len(segments) > 2 and version is None:
            return None
        if len(segments) > 4 or (len(segments) == 4 and not _JURISDICTION.match(segments[3])):
            return None
        return License(segments[1], version)
    return None


# Provider vocabularies ------------------------------------------------------------------------

FLICKR: dict[str, License | None] = {
    "0": None,  # All Rights Reserved
    "1": License("by-nc-sa", "2.0"), "2": License("by-nc", "2.0"), "3": License("by-nc-nd", "2.0"),
    "4": License("by", "2.0"), "5": License("by-sa", "2.0"), "6": License("by-nd", "2.0"),
    "7": None,  # "No known copyright restrictions" (Flickr Commons): a statement, not a licence
    "8": None,  # "United States Government Work": public domain in the US only
    "9": License("cc0", "1.0"), "10": License("pdm", "1.0"),
    "11": License("by", "4.0"), "12": License("by-sa", "4.0"), "13": License("by-nd", "4.0"),
    "14": License("by-nc", "4.0"), "15": License("by-nc-sa", "4.0"), "16": License("by-nc-nd", "4.0"),
}
"""flickr.photos.licenses.getInfo: Flickr's numeric licence ids."""

INATURALIST = ("cc0", "cc-by", "cc-by-nc", "cc-by-sa", "cc-by-nd", "cc-by-nc-sa", "cc-by-nc-nd")
"""iNaturalist's `license_code` values (and its `photo_license` filter); null is all rights reserved."""


def from_flickr(license_id: object) -> Resolved:
    """A Flickr photo's `license` extra (a string or number id) as id and deed URL."""
    found = FLICKR.get(str(license_id).strip()) if isinstance(license_id, (str, int)) else None
    return Resolved(found.id, license_url(found.id, found.version)) if found else Resolved(None, None)


def flickr_filter(allowed: frozenset[str] | None) -> str | None:
    """Flickr's `license` parameter for an allow-list: every Flickr id whose licence is allowed,
    comma-separated; "" when none is (nothing on Flickr can be kept); None without a list."""
    if allowed is None:
        return None
    return ",".join(key for key, found in FLICKR.items() if found and found.id in allowed)


def inaturalist_filter(allowed: frozenset[str] | None) -> str | None:
    """iNaturalist's `photo_license` parameter: its codes for the allowed ids; "" when none is."""
    if allowed is None:
        return None
    return ",".join(code for code in INATURALIST if normalise(code) in allowed)


def public_domain(dedicated: bool) -> Resolved:
    """Museums' open-access flags (the Met's `isPublicDomain`, Smithsonian's `usage.access == "CC0"`):
    both release the images under CC0; anything else is no licence this vocabulary holds."""
    return Resolved("cc0", license_url("cc0")) if dedicated else Resolved(None, None)
