"""Queue order: strict tiers, round-robin between jobs of a tier, older submissions first, promotion."""

import pytest

from dataset_operator import priority

T0 = 1_760_000_000.0  # a submission time well inside the encodable range


def order(entries: dict[str, float]) -> list[str]:
    return sorted(entries, key=entries.__getitem__)


def test_any_new_user_chunk_precedes_every_enterprise_chunk():
    latest_new_user = priority.score("new-user", priority.MAX_CHUNKS, T0 + 86_400 * 365)
    earliest_enterprise = priority.score("enterprise", 0, T0 - 86_400 * 365)
    assert latest_new_user < earliest_enterprise


def test_any_enterprise_chunk_precedes_every_free_chunk():
    assert priority.score("enterprise", priority.MAX_CHUNKS, T0 + 1e6) < priority.score("free", 0, T0 - 1e6)


def test_round_robin_runs_chunk_k_of_every_job_before_chunk_k_plus_1_of_any():
    jobs = {"old-big": (T0, 6), "mid": (T0 + 60, 3), "new-small": (T0 + 3600, 2)}
    entries = {f"{job}/{index}": priority.score("free", index, submitted)
               for job, (submitted, chunks) in jobs.items() for index in range(chunks)}
    indices = [int(member.split("/")[1]) for member in order(entries)]
    assert indices == sorted(indices)
    assert order(entries)[:3] == ["old-big/0", "mid/0", "new-small/0"]


def test_older_submission_first_within_a_round():
    assert priority.score("enterprise", 4, T0) < priority.score("enterprise", 4, T0 + 1)


def test_a_promoted_free_chunk_precedes_new_user_chunks():
    promoted = priority.score("free", priority.MAX_CHUNKS, T0 + 1e6, promoted=True)
    assert promoted < priority.score("new-user", 0, T0 - 1e6)


def test_score_decodes_back_to_rank_index_and_second():
    value = priority.score("enterprise", 1234, T0 + 0.9)
    assert priority.decode(value) == (priority.TIER_RANK["enterprise"], 1234, int(T0))
    assert priority.tier_of_rank(priority.decode(value)[0]) == "enterprise"
    assert priority.tier_of_rank(priority.decode(priority.score("free", 0, T0, promoted=True))[0]) == "promoted"


def test_scores_stay_exact_at_the_top_of_the_range():
    """A double holds 53 bits: neighbours in the last tier and index must still sort apart."""
    high = priority.score("free", priority.MAX_CHUNKS, T0 + 1)
    assert priority.score("free", priority.MAX_CHUNKS, T0) < high
    assert priority.decode(high) == (priority.TIER_RANK["free"], priority.MAX_CHUNKS, int(T0) + 1)


@pytest.mark.parametrize("index", [-1, priority.MAX_CHUNKS + 1])
def test_index_outside_the_encodable_range_is_refused(index):
    with pytest.raises(ValueError, match="outside"):
        priority.score("free", index, T0)
