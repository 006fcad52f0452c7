"""A URL list's raw bytes into numbered lines: every line comes out, readable or with its problem."""

from chunk_worker.listlines import Line, split_lines


def test_lines_end_at_lf_crlf_or_a_lone_cr():
    assert list(split_lines([b"a\nb\r\nc\rd"])) == [Line(1, "a"), Line(2, "b"), Line(3, "c"), Line(4, "d")]


def test_a_crlf_split_across_chunks_ends_one_line():
    assert [line.text for line in split_lines([b"a\r", b"\nb\r", b"", b"\nc"])] == ["a", "b", "c"]


def test_a_line_split_across_chunks_is_joined():
    assert list(split_lines([b"ht", b"tp://a/", b"1\n"])) == [Line(1, "http://a/1")]


def test_blank_lines_keep_their_numbers():
    assert list(split_lines([b"a\n\r\n\rb\n"])) == [Line(1, "a"), Line(2, ""), Line(3, ""), Line(4, "b")]


def test_a_final_newline_adds_no_line():
    assert len(list(split_lines([b"a\n", b"b\r\n"]))) == 2


def test_a_byte_order_mark_is_dropped_from_the_first_line_only():
    assert [line.text for line in split_lines([b"\xef\xbb\xbfa\n\xef\xbb\xbfb"])] == ["a", "\ufeffb"]


def test_an_overlong_line_is_a_problem_and_the_next_line_is_read():
    lines = list(split_lines([b"short\n", b"x" * 60, b"x" * 60 + b"\nnext"], max_line=100))
    assert lines == [Line(1, "short"), Line(2, None, "longer than 100 bytes"), Line(3, "next")]


def test_invalid_utf8_is_a_problem_naming_the_byte():
    assert list(split_lines([b"ok\nab\xffc\n"])) == [Line(1, "ok"), Line(2, None, "not UTF-8 (byte 3)")]


def test_a_nul_byte_is_a_problem():
    assert list(split_lines([b"a\0b\nc"])) == [Line(1, None, "contains a NUL byte"), Line(2, "c")]
