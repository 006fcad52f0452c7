"""What `kubectl pixcrawler watch` shows and how it ends."""

from kubectl_pixcrawler.watching import chunk_counts, exit_code, progress_line


def body(phase=None, **status):
    return {"status": {"phase": phase, **status}} if phase else {}


def test_the_line_shows_chunks_images_reason_and_position():
    line = progress_line(body("Queued", chunks={"total": 4, "succeeded": 1, "failed": 0},
                              images={"uploaded": 480, "rejected": 12, "failed": 3, "duplicates": 5},
                              queuePosition=7, reason="WaitingForQuota", message="the quota is in use"))
    assert line == ("Queued | chunks 1/4 | images 480 stored, 12 rejected, 3 failed, 5 duplicates | "
                    "queue position 7 | WaitingForQuota: the quota is in use")


def test_a_new_job_without_status_is_pending():
    assert progress_line({}).startswith("Pending | chunks 0/?")
    assert chunk_counts({}) == (0, None)


def test_exit_code_is_zero_on_success_one_on_failure_and_none_meanwhile():
    assert [exit_code(body(p)) for p in ("Succeeded", "Failed", "Running", "Queued")] == [0, 1, None, None]
    assert exit_code({}) is None


def test_a_message_with_the_workers_log_lines_stays_on_one_bounded_line():
    message = "1 of 1 chunks failed for good; last failure: WorkerFailed: exit 2:\n" + "\n".join(
        f'{{"level": "error", "msg": "line {n}"}}' for n in range(40))
    line = progress_line(body("Failed", reason="WorkerFailed", message=message))
    assert "\n" not in line and line.endswith("…")
    assert len(line) < 400
