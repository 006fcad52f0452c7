"""The scratch spool accepted images wait in, and the runner's parking in front of it."""

import os
import threading

import pytest

from chunk_worker.runner import Accepted, Parking
from chunk_worker.spool import Spool


def test_appended_bytes_read_back_at_their_offsets_from_many_threads(tmp_path):
    spool = Spool(tmp_path / "spool")
    blobs = [os.urandom(1000 + n * 37) for n in range(64)]
    offsets = [None] * len(blobs)

    def write(n):
        offsets[n] = spool.append(blobs[n])

    threads = [threading.Thread(target=write, args=(n,)) for n in range(len(blobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(offsets) == sorted(set(offsets))
    for offset, blob in zip(offsets, blobs):
        assert spool.read(offset, len(blob)) == blob
    assert (tmp_path / "spool").stat().st_size == sum(map(len, blobs))
    spool.close()
    assert not (tmp_path / "spool").exists()


def test_copy_to_appends_the_range_to_another_file(tmp_path):
    spool = Spool(tmp_path / "spool")
    first, second = spool.append(b"a" * 5000), spool.append(b"bc" * 3000)
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    os.write(fd, b"head")
    spool.copy_to(second, 6000, fd)
    spool.copy_to(first, 5000, fd)
    os.close(fd)
    assert (tmp_path / "out").read_bytes() == b"head" + b"bc" * 3000 + b"a" * 5000
    spool.release(first, 5000)  # a hole now: what is left still reads back
    assert spool.read(second, 6000) == b"bc" * 3000
    spool.close()


def test_a_failed_append_leaves_none_of_its_bytes(tmp_path, monkeypatch):
    spool = Spool(tmp_path / "spool")
    spool.append(b"kept")
    real = os.pwrite

    def half_then_full(fd, data, offset):
        if len(data) > 100:
            real(fd, bytes(data[:50]), offset)
            raise OSError(28, "No space left on device")
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", half_then_full)
    with pytest.raises(OSError):
        spool.append(b"x" * 1000)
    assert (tmp_path / "spool").read_bytes() == b"kept"
    assert spool.append(b"next") == 4  # the failed append's range is given out again
    spool.close()


def test_parked_bytes_wait_in_memory_up_to_the_cap_then_in_the_spool(tmp_path):
    parking = Parking(tmp_path, memory_bytes=2500)
    images = [Accepted(None, {}, None, bytes([n]) * 1000) for n in range(4)]
    for image in images:
        image.park(parking)
    assert (tmp_path / "parked").stat().st_size == 2000  # two fit in memory, two went to disk
    assert [image.take() for image in images] == [bytes([n]) * 1000 for n in range(4)]
    again = Accepted(None, {}, None, b"z" * 2500)  # taken ones no longer count against the cap
    again.park(parking)
    assert (tmp_path / "parked").stat().st_size == 2000
    assert again.take() == b"z" * 2500
    parking.close()
    assert not (tmp_path / "parked").exists()


def test_an_image_taken_before_it_parks_is_not_parked(tmp_path):
    parking = Parking(tmp_path, memory_bytes=0)
    image = Accepted(None, {}, None, b"data")
    assert image.take() == b"data"
    image.park(parking)
    assert not (tmp_path / "parked").exists()
