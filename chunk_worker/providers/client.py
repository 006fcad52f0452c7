"""One provider's API as the providers call it: every request paced through the cluster-wide bucket,
under the search's deadline, with 429/5xx and Retry-After turned into a wait for every worker."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping

from chunk_worker.errors import ChunkError, SourceUnavailable, SpecError
from chunk_worker.fetch import RETRY_STATUSES, SourceHTTPError, backoff_delay
from chunk_worker.pacing import Rate
from chunk_worker.providers.protocol import SearchContext

TRIES = 5


class RetryLater(Exception):
    """The provider answered 200 but asks for a pause (MediaWiki's maxlag error)."""

    def __init__(self, seconds: float, why: str) -> None:
        super().__init__(why)
        self.seconds = seconds


class ApiClient:
    def __init__(self, context: SearchContext, bucket: str, rate: Rate, key_setting: str | None = None,
                 check: Callable[[object], None] | None = None, secrets: tuple[str, ...] = ()) -> None:
        """`key_setting` names the setting whose key the requests carry, so a 401/403 says which key
        was refused; `check` reads an answer for errors a provider reports in a 200; `secrets` are
        cut out of every error message (a key sent as a query parameter is part of the URL)."""
        self.context = context
        self.bucket = bucket
        self.rate = rate
        self.key_setting = key_setting
        self.check = check
        self.secrets = tuple(secret for secret in secrets if secret)
        self._rng = random.Random()

    def get(self, url: str, params: Mapping[str, object] | None = None, *, headers: Mapping[str, str] | None = None,
            form: Mapping[str, str] | None = None) -> object:
        try:
            return self._get(url, params, headers, form)
        except ChunkError as exc:
            message = str(exc)
            for secret in self.secrets:
                message = message.replace(secret, "<redacted>")
            exc.args = (message,)
            raise

    def _get(self, url: str, params: Mapping[str, object] | None, headers: Mapping[str, str] | None,
             form: Mapping[str, str] | None) -> object:
        context = self.context
        for attempt in range(1, TRIES + 1):
            context.pacer.acquire(self.bucket, self.rate, context.deadline)
            try:
                try:
                    document = context.fetcher.get_json(url, dict(params or {}), headers=headers, form=form,
                                                        deadline=context.deadline, attempts=1)
                except RecursionError:
                    raise SourceUnavailable(f"search provider {self.bucket}: its answer is nested too deep") from None
                if self.check is not None:
                    self.check(document)
                return document
            except SourceHTTPError as exc:
                if exc.status in (401, 403) and self.key_setting:
                    raise SpecError(f"search provider {self.bucket} refused the key in "
                                    f"PIXCRAWLER_{self.key_setting.upper()} (HTTP {exc.status})") from None
                if exc.status not in RETRY_STATUSES or attempt == TRIES:
                    raise
                delay = backoff_delay(attempt, exc.retry_after, self._rng)
                why = f"HTTP {exc.status}"
            except RetryLater as exc:
                if attempt == TRIES:
                    raise SourceUnavailable(f"search provider {self.bucket}: {exc}") from None
                delay, why = exc.seconds, str(exc)
            if delay >= context.deadline - time.monotonic():
                raise SourceUnavailable(f"search provider {self.bucket} asks to wait {delay:.0f} s ({why}), "
                                        "past the search's deadline (PIXCRAWLER_LIST_DEADLINE_SECONDS)")
            context.pacer.hold(self.bucket, self.rate, delay)
        raise AssertionError("unreachable: the last try returns or raises")


def rate_for(context: SearchContext, provider: str, documented: Rate) -> Rate:
    """The documented rate, or PIXCRAWLER_SEARCH_RATES' figure for the provider."""
    override = context.settings.search_rates.get(provider)
    return documented if override is None else Rate(override, documented.burst)
