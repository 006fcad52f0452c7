"""The chart's CRD is the top-level crds/ file, never a twin that can drift."""

from __future__ import annotations

import tarfile

import yaml

from tests.chart.chart import CHART, CRD_FILE, find, helm, render


def test_rendered_crd_is_the_top_level_file(tmp_path):
    _, docs = render({}, tmp_path)
    rendered = find(docs, "CustomResourceDefinition")
    source = yaml.safe_load(CRD_FILE.read_text())
    assert rendered["spec"] == source["spec"]
    assert rendered["metadata"]["name"] == source["metadata"]["name"]
    assert rendered["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_chart_reaches_the_crd_through_a_symlink_not_a_copy():
    link = CHART / "files" / CRD_FILE.name
    assert link.is_symlink()
    assert link.resolve() == CRD_FILE.resolve()


def test_packaged_chart_carries_the_crd_file_contents(tmp_path):
    helm("package", str(CHART), "--destination", str(tmp_path))
    (package,) = tmp_path.glob("pixcrawler-operator-*.tgz")
    with tarfile.open(package) as archive:
        packed = archive.extractfile(f"pixcrawler-operator/files/{CRD_FILE.name}").read()
    assert packed == CRD_FILE.read_bytes()

