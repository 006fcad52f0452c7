"""Each chart's SVG for a known input: one bar per value, heights in proportion, text escaped."""

import re
import xml.etree.ElementTree as ET

from chunk_worker.report import charts
from chunk_worker.report.distributions import Histogram, power_edges, short_bytes

SVG = "{http://www.w3.org/2000/svg}"


def bars(svg: str) -> list[ET.Element]:
    return [rect for rect in ET.fromstring(svg).iter(f"{SVG}rect") if rect.get("class") == "bar"]


def test_bar_chart_draws_one_bar_per_value_scaled_to_the_largest():
    svg = charts.bar_chart("chart-labels", "Images per label", [("cat", 30), ("dog", 15)])
    root = ET.fromstring(svg)
    assert root.get("id") == "chart-labels"
    drawn = bars(svg)
    assert [(rect.get("data-name"), rect.get("data-value")) for rect in drawn] == [("cat", "30"), ("dog", "15")]
    assert float(drawn[0].get("width")) == 2 * float(drawn[1].get("width"))
    assert [title.text for rect in drawn for title in rect.iter(f"{SVG}title")] == ["cat: 30", "dog: 15"]


def test_column_chart_draws_every_series_in_every_bin():
    svg = charts.column_chart("chart-dimensions", "Width and height", ["<32", "32-64", ">=64"],
                              [("width", [0, 4, 2]), ("height", [1, 2, 3])])
    drawn = bars(svg)
    assert [(rect.get("data-name"), rect.get("data-bin"), rect.get("data-value")) for rect in drawn] == [
        ("width", "<32", "0"), ("height", "<32", "1"), ("width", "32-64", "4"), ("height", "32-64", "2"),
        ("width", ">=64", "2"), ("height", ">=64", "3")]
    heights = {(rect.get("data-name"), rect.get("data-bin")): float(rect.get("height")) for rect in drawn}
    assert heights[("width", "32-64")] == 2 * heights[("width", ">=64")] > 0 == heights[("width", "<32")]


def test_timeline_places_each_chunk_at_its_start_with_its_length():
    svg = charts.timeline_chart("chart-chunks", "Chunks", [("00000", 0.0, 10.0), ("00001", 5.0, 7.5)])
    first, second = bars(svg)
    assert (first.get("data-start"), first.get("data-value")) == ("0.000", "10.000")
    assert (second.get("data-start"), second.get("data-value")) == ("5.000", "2.500")
    assert float(first.get("width")) == 4 * float(second.get("width"))
    assert float(second.get("x")) - float(first.get("x")) == float(first.get("width")) / 2


def test_a_long_run_of_chunks_is_drawn_in_a_bounded_number_of_rows():
    spans = [(f"{n:05d}", float(n), n + 1.0) for n in range(1_000)]
    merged = charts.merge_spans(spans, rows=100)
    assert len(merged) == 100
    assert merged[0] == ("00000\u201300009", 0.0, 10.0) and merged[-1] == ("00990\u201300999", 990.0, 1000.0)
    assert len(bars(charts.timeline_chart("chart-chunks", "Chunks", spans))) <= charts.TIMELINE_ROWS


def test_an_empty_chart_says_so():
    for svg in (charts.bar_chart("a", "A", []), charts.column_chart("b", "B", ["x"], [("s", [0])]),
                charts.timeline_chart("c", "C", [])):
        assert "no data" in svg and not bars(svg)


def test_hostile_names_are_text_in_the_svg():
    svg = charts.bar_chart("chart-labels", "<b>labels</b>", [('<script>alert("x")</script>', 1)])
    assert "<script>" not in svg and "<b>" not in svg
    root = ET.fromstring(svg)  # still well-formed
    assert bars(svg)[0].get("data-name") == '<script>alert("x")</script>'
    assert not [element for element in root.iter() if element.tag in (f"{SVG}script", "script")]


def test_histogram_bins_values_between_power_of_two_edges():
    histogram = Histogram(power_edges(32, 128))
    for value in (1, 31, 32, 63, 64, 127, 128, 10_000):
        histogram.add(value)
    assert histogram.edges == [32, 64, 128]
    assert histogram.counts == [2, 2, 2, 2]
    assert histogram.labels() == ["<32", "32-64", "64-128", ">=128"]
    assert re.fullmatch(r"4K", short_bytes(4096)) and short_bytes(8 << 20) == "8M" and short_bytes(10) == "10B"


def test_a_bar_chart_of_many_labels_sums_the_rest_in_its_last_bar():
    labels = [(f"label-{n:04d}", 1_000 - n) for n in range(1_000)]
    drawn = bars(charts.bar_chart("chart-labels", "Images per label", labels))
    assert len(drawn) == charts.BARS
    assert drawn[-1].get("data-name") == f"{1_000 - charts.BARS + 1} more"
    assert sum(int(rect.get("data-value")) for rect in drawn) == sum(value for _, value in labels)
