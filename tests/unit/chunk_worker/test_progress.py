"""What a chunk's progress says about the items it did not store: counts per reason, with a label set
the operator can export as a metric without unbounded cardinality."""

from chunk_worker.contract import ManifestLine, Reason, metric_reason, metric_reasons
from chunk_worker.progress import Tally


def test_http_statuses_fold_into_their_class():
    assert [metric_reason(r) for r in ("http_404", "http_410", "http_503", "http_302", "http_9999")] == [
        "http_4xx", "http_4xx", "http_5xx", "http_other", "http_other"]


def test_every_reason_is_its_own_label_and_anything_else_is_other():
    assert all(metric_reason(reason.value) == reason.value for reason in Reason)
    assert metric_reason("something new") == "other"
    assert {metric_reason(r) for r in ("http_404", "too_small", "?")} <= set(metric_reasons())
    assert all(metric_reason(label) == label for label in metric_reasons())


def test_the_tally_counts_items_not_stored_by_reason():
    tally = Tally()
    for status, reason in [("ok", None), ("rejected", "too_small"), ("rejected", "too_small"),
                           ("failed", "http_404"), ("duplicate", "duplicate")]:
        tally.add(ManifestLine(url="http://example.org/a.jpg", status=status, reason=reason))
    assert tally.reasons == {"r_too_small": 2, "r_http_4xx": 1, "r_duplicate": 1}
    assert tally.counts["rejected"] == 2 and tally.counts["duplicates"] == 1
