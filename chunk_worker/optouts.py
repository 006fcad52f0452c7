"""Opt-out signals, as pure decisions: X-Robots-Tag, robots.txt and TDMRep.

Each refusal names the signal and the value that made it (`contract.OptOut`), which goes into the
item's manifest line. What to do when robots.txt or tdmrep.json cannot be had is decided here too
(`robots_from_response`, `tdmrep_from_response`); fetching them once per origin and chunk is
chunk_worker.sitefiles' job.

Sources: robots.txt is RFC 9309, parsed and matched by protego; TDMRep is the W3C Community Group
report "TDM Reservation Protocol" (the `tdm-reservation` and `tdm-policy` response headers, and
`/.well-known/tdmrep.json`: a JSON array of {location, tdm-reservation, tdm-policy} rules, the first
matching rule applies, locations match as robots.txt paths do, and a header supersedes the file).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from protego import Protego

from chunk_worker.contract import OptOut, Reason, Respect
from chunk_worker.redaction import redact_url

SITE_FILE_MAX_BYTES = 500 * 1024
"""RFC 9309 asks crawlers to parse at least the first 500 KiB of a robots.txt (Google stops there
too); what follows is ignored. tdmrep.json gets the same cap: a longer one is refused as invalid."""

ORIGIN_FAILURES = frozenset({Reason.CONNECTION_ERROR.value, Reason.TIMEOUT.value, Reason.BLOCKED_ADDRESS.value,
                             Reason.BLOCKED_SCHEME.value, Reason.BAD_URL.value})
AI_DIRECTIVES = frozenset({"noai", "noimageai"})
AGENT_TOKEN = re.compile(r"^[A-Za-z_-]+$")
"""RFC 9309 2.2.1: a product token is letters, underscores and hyphens."""


RECORDED_CHARS = 512
"""Most characters of a site's text (a header value, a robots.txt pattern, a policy URL) a manifest
line records: a server can send tens of KiB in one header."""


def record(signal: str, value: str, agent: str | None = None, policy: str | None = None) -> OptOut:
    """The manifest's record of a signal, its site-given texts cut to RECORDED_CHARS and the policy
    URL without credentials."""
    def cut(text: str) -> str:
        return text if len(text) <= RECORDED_CHARS else text[:RECORDED_CHARS] + "..."
    return OptOut(signal=signal, value=cut(value), agent=agent, policy=None if policy is None else cut(redact_url(policy)))


@dataclass(frozen=True)
class Refusal:
    """An item the site opted out of: the manifest reason and the record of the signal."""

    reason: str
    record: OptOut


# X-Robots-Tag --------------------------------------------------------------------------------


def x_robots_tag_refusal(value: str | None) -> Refusal | None:
    """`noai` or `noimageai`, bare or in the `<useragent>: noai` form (any agent: the directives
    name AI use, and we would rather skip an image than guess which crawler a site meant)."""
    if not value:
        return None
    tokens = re.split(r"[\s,:;]+", value.lower())
    if AI_DIRECTIVES.isdisjoint(tokens):
        return None
    return Refusal(Reason.OPT_OUT.value, record("x-robots-tag", value.strip()))


# robots.txt ----------------------------------------------------------------------------------


def path_matcher(pattern: str) -> Protego:
    """A robots.txt path pattern (`*`, a final `$`, percent-decoding) as protego matches it: the
    matcher disallows, for any agent, exactly the URLs the pattern matches."""
    return Protego.parse(f"User-agent: *\nDisallow: {pattern}\n")


def path_matches(matcher: Protego, url: str) -> bool:
    return not matcher.can_fetch(url, "*")


_DISALLOW = re.compile(r"^\s*disallow\s*:\s*([^#\s]*)", re.IGNORECASE | re.MULTILINE)
ATTRIBUTED_PATTERNS = 1000
"""Disallow patterns a refusal is attributed among (the file's first ones); past them it says "Disallow"."""


class Robots:
    """One origin's robots.txt as the crawler sees it: rules, none (allow all), or unreachable
    (RFC 9309 2.3.1.4: a robots.txt that cannot be reached for a server or network error means
    complete disallow). Parsed once; kept for the chunk by chunk_worker.sitefiles."""

    def __init__(self, text: str = "", unreachable: str | None = None,
                 reason: str = Reason.ROBOTS_TXT_UNREACHABLE.value) -> None:
        self.unreachable = unreachable
        self.reason = reason  # an item's reason while unreachable
        self._parser = Protego.parse(text) if text.strip() else None
        patterns = dict.fromkeys(p for p in _DISALLOW.findall(text) if p)
        self._patterns = list(patterns)[:ATTRIBUTED_PATTERNS]
        self._matchers: list[tuple[str, Protego]] | None = None
        self._lock = threading.Lock()

    def allows(self, url: str, agent: str) -> bool:
        return self._parser is None or self._parser.can_fetch(url, agent)

    def disallowing_line(self, url: str) -> str:
        """The longest Disallow pattern of the file that by itself refuses `url`: protego knows which
        group applies but not which line decided, so each pattern is matched on its own."""
        with self._lock:
            if self._matchers is None:
                self._matchers = [(pattern, path_matcher(pattern)) for pattern in self._patterns]
        matching = [pattern for pattern, matcher in self._matchers if path_matches(matcher, url)]
        return f"Disallow: {max(matching, key=len)}" if matching else "Disallow"


def robots_text(body: bytes, truncated: bool) -> str:
    """The text protego parses: UTF-8 (bad bytes replaced), and when the cap cut the file, without
    its last, partial line."""
    text = body.decode("utf-8", errors="replace").lstrip("\ufeff")
    if truncated:
        text = text[: max(text.rfind("\n"), 0)]
    return text


def robots_from_response(status: int | None, body: bytes | None, truncated: bool = False,
                         failure: str | None = None, redirected: bool = False) -> Robots:
    """RFC 9309 2.3.1: a 2xx body is the rules; 4xx ("unavailable") allows everything, except 429,
    which Google and this worker treat like 5xx; 5xx, a failed request (timeout, connection, an
    address the network policy refuses on a redirect, too many redirects) is unreachable. When the
    origin itself gave no answer (connection_error, timeout) or the policy refuses it (blocked_address),
    its images would not have come either: their reason is that, as it would be without robots.txt."""
    if failure is not None:
        if status is None and not redirected and failure in ORIGIN_FAILURES:
            return Robots(unreachable=failure, reason=failure)
        return Robots(unreachable=failure if status is None else f"http_{status}: {failure}")
    assert status is not None, "a response without a failure has a status"
    if 200 <= status < 300:
        return Robots(text=robots_text(body or b"", truncated))
    if 400 <= status < 500 and status != 429:
        return Robots()
    return Robots(unreachable=f"http_{status}")


def robots_refusal(robots: Robots, url: str, agent: str) -> Refusal | None:
    """Whether `agent` may fetch `url` under `robots`; a refusal records the most specific Disallow
    line of the file that matches the URL's path."""
    if robots.unreachable is not None:
        return Refusal(robots.reason,
                       record("robots.txt", f"unreachable ({robots.unreachable})", agent))
    if robots.allows(url, agent):
        return None
    return Refusal(Reason.ROBOTS_TXT_DISALLOWED.value,
                   record("robots.txt", robots.disallowing_line(url), agent))


# TDMRep --------------------------------------------------------------------------------------


class TdmRepInvalid(ValueError):
    """A tdmrep.json that is not a JSON array of rules: the origin is taken not to implement TDMRep."""


@dataclass(frozen=True)
class TdmRule:
    location: str
    reservation: int | None  # None: a value other than 0 or 1, which the report says counts as unset
    policy: str | None = None
    _matcher: Protego = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_matcher", path_matcher(self.location))

    def matches(self, url: str) -> bool:
        """Locations are robots.txt path patterns (the report reuses their syntax), so protego matches them."""
        return path_matches(self._matcher, url)


def tdm_reservation(value: object) -> int | None:
    """0 or 1 (as a number or a string); anything else is a protocol error, taken as unset."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value in (0, 1):
        return value
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return int(value.strip())
    return None


def parse_tdmrep(body: bytes) -> list[TdmRule]:
    """The rules of a tdmrep.json, in order. A rule without a usable `location` string is left out;
    one whose `tdm-reservation` is not 0 or 1 stays, as unset, so it still shadows the rules after it."""
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise TdmRepInvalid(f"not UTF-8 JSON ({exc})") from None
    if not isinstance(document, list):
        raise TdmRepInvalid(f"a JSON array of rules is required, not {type(document).__name__}")
    rules = []
    for entry in document:
        if not isinstance(entry, dict):
            continue
        location = entry.get("location")
        if not isinstance(location, str) or not location or any(c in location for c in "\r\n#"):
            continue
        policy = entry.get("tdm-policy")
        rules.append(TdmRule(location, tdm_reservation(entry.get("tdm-reservation")),
                             policy if isinstance(policy, str) else None))
    return rules


def tdmrep_from_response(status: int | None, body: bytes | None, failure: str | None = None) -> list[TdmRule]:
    """The report: failing to provide the file means the origin does not implement TDMRep, so anything
    but a 2xx with a valid array gives no rules. Raises TdmRepInvalid for a 2xx that is not one."""
    if failure is not None or status is None or not 200 <= status < 300:
        return []
    return parse_tdmrep(body or b"")


def tdmrep_rule_for(rules: list[TdmRule], url: str) -> TdmRule | None:
    """The first rule whose location matches the URL's path (the report's "most specific match")."""
    return next((rule for rule in rules if rule.matches(url)), None)


def tdm_refusal(headers: Mapping[str, str], rule: TdmRule | None) -> Refusal | None:
    """The `tdm-reservation` header supersedes the origin's file; 1 reserves TDM rights (the DSM
    Directive's Article 4 opt-out), 0 or unset does not."""
    header = tdm_reservation(headers.get("tdm-reservation"))
    if header is not None:
        if header == 0:
            return None
        return Refusal(Reason.TDM_RESERVED.value,
                       record("tdm-reservation", "1", policy=headers.get("tdm-policy")))
    if rule is None or rule.reservation != 1:
        return None
    return Refusal(Reason.TDM_RESERVED.value, record("tdmrep.json", f"{rule.location}: tdm-reservation 1",
                                                     policy=rule.policy))


def response_refusal(headers: Mapping[str, str], respect: Respect, tdm_rule: TdmRule | None) -> Refusal | None:
    """What a response's headers (and the origin's tdmrep.json rule for it) say, in the order the
    signals are checked: X-Robots-Tag, then TDMRep."""
    if respect.x_robots_tag:
        refusal = x_robots_tag_refusal(headers.get("X-Robots-Tag"))
        if refusal is not None:
            return refusal
    if respect.tdm_rep:
        return tdm_refusal(headers, tdm_rule)
    return None


def origin_of(url: str) -> str:
    """scheme://host:port, the scope of a robots.txt (RFC 9309 2.3) and of a tdmrep.json."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    host = (parts.hostname or "").lower()
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"
