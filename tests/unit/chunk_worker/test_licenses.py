"""Licence normalisation: every spelling a provider or a user's list column gives, one id vocabulary."""

from __future__ import annotations

import pytest

from chunk_worker.licenses import (
    LICENSES,
    License,
    UnknownLicense,
    is_allowed,
    license_url,
    normalise,
    normalise_allow_list,
    parse,
    requires_attribution,
    resolve,
)

SPELLINGS = [
    # ids as Openverse returns them
    ("cc0", "cc0"), ("pdm", "pdm"), ("by", "by"), ("by-sa", "by-sa"), ("by-nc", "by-nc"), ("by-nd", "by-nd"),
    ("by-nc-sa", "by-nc-sa"), ("by-nc-nd", "by-nc-nd"), ("sampling+", "sampling+"), ("nc-sampling+", "nc-sampling+"),
    # short names, any case and separator
    ("CC BY-SA 4.0", "by-sa"), ("cc-by-sa", "by-sa"), ("CC-BY", "by"), ("CC BY", "by"), ("cc_by_nc", "by-nc"),
    ("BY-NC-ND", "by-nc-nd"), ("CC BY-NC-SA 2.0", "by-nc-sa"), ("  by-sa  ", "by-sa"), ("by sa", "by-sa"),
    ("by-sa-nc", "by-nc-sa"), ("CC BY 4", "by"),
    # SPDX identifiers, ported licences
    ("CC-BY-SA-4.0", "by-sa"), ("CC-BY-NC-ND-3.0-DE", "by-nc-nd"), ("CC-BY-3.0-IGO", "by"), ("CC0-1.0", "cc0"),
    ("CC BY-SA 3.0 de", "by-sa"), ("CC BY 2.5 dk", "by"),
    # long names
    ("Attribution 4.0 International", "by"), ("Attribution-ShareAlike 4.0 International", "by-sa"),
    ("Creative Commons Attribution-NonCommercial-NoDerivatives 4.0 International License", "by-nc-nd"),
    ("Attribution-NonCommercial-NoDerivs 3.0 Unported", "by-nc-nd"), ("Attribution Non-Commercial Share-Alike", "by-nc-sa"),
    ("Creative Commons Attribution-NoDerivs 2.0 Generic", "by-nd"),
    # public domain
    ("CC0 1.0", "cc0"), ("CC0", "cc0"), ("cc-0", "cc0"), ("CC Zero", "cc0"), ("CC0 1.0 Universal", "cc0"),
    ("CC0 1.0 Universal Public Domain Dedication", "cc0"), ("Public Domain Dedication", "cc0"),
    ("publicdomain", "pdm"), ("Public Domain", "pdm"), ("public-domain", "pdm"), ("Public Domain Mark 1.0", "pdm"),
    ("PDM", "pdm"),
    # retired
    ("CC Sampling+ 1.0", "sampling+"), ("sampling plus", "sampling+"), ("NC-Sampling+", "nc-sampling+"),
    # deed URLs
    ("https://creativecommons.org/licenses/by-sa/4.0/", "by-sa"), ("http://creativecommons.org/licenses/by/2.0", "by"),
    ("https://creativecommons.org/licenses/by-nc-nd/4.0/legalcode", "by-nc-nd"),
    ("https://creativecommons.org/licenses/by-nc/4.0/deed.en", "by-nc"),
    ("https://creativecommons.org/licenses/by/4.0/deed.zh-hant", "by"),
    ("https://www.creativecommons.org/licenses/by-nd/3.0/", "by-nd"),
    ("http://creativecommons.org/licenses/by-sa/2.5/dk/", "by-sa"),
    ("https://creativecommons.org/licenses/by/3.0/igo/legalcode", "by"),
    ("creativecommons.org/licenses/by-sa/4.0", "by-sa"), ("HTTPS://CreativeCommons.org/Licenses/BY/4.0/", "by"),
    ("https://creativecommons.org/publicdomain/zero/1.0/", "cc0"),
    ("https://creativecommons.org/publicdomain/zero/1.0/legalcode", "cc0"),
    ("https://creativecommons.org/publicdomain/mark/1.0/", "pdm"),
    ("https://creativecommons.org/publicdomain/mark/1.0//", "pdm"),  # Openverse's own pdm fallback URL
    ("https://creativecommons.org/licenses/sampling+/1.0/", "sampling+"),
    ("https://creativecommons.org/licenses/nc-sampling%2B/1.0/", "nc-sampling+"),
    ("https://creativecommons.org/licenses/by-sa/4.0/?ref=x#terms", "by-sa"),
]

NOT_LICENCES = [
    None, "", "   ", "unknown", "all rights reserved", "Copyright 2020 Jane", "GPL-3.0", "MIT", "cc", "CC BY-SA-ish",
    "sa", "nc-sa", "nd", "PD", "PD-US", "Public Domain (US)", "public domain mark us", "sampling",
    "CC BY, CC BY-SA",  # two licences: which one?
    "by-by", "CC BY 3.0 4.0", "CC BY-SA DE",
    "https://example.org/licenses/by/4.0/", "https://creativecommons.org.evil.test/licenses/by/4.0/",
    "https://evil.test/creativecommons.org/licenses/by/4.0/", "ftp://creativecommons.org/licenses/by/4.0/",
    "https://creativecommons.org/", "https://creativecommons.org/publicdomain/",
    "https://creativecommons.org/licenses/publicdomain/", "https://creativecommons.org/licenses/sampling/1.0/",
    "https://creativecommons.org/licenses/by/latest/", "https://creativecommons.org/licenses/by/4.0/extra/",
    "https://creativecommons.org/licenses/by/4.0/de/extra/",
    "https://creativecommons.org/about/cc0", "https://www.gnu.org/licenses/gpl-3.0.html",
]


@pytest.mark.parametrize(("spelling", "license_id"), SPELLINGS)
def test_spelling_normalises_to_its_id(spelling, license_id):
    assert normalise(spelling) == license_id


@pytest.mark.parametrize("value", NOT_LICENCES)
def test_what_names_no_licence_normalises_to_none(value):
    assert normalise(value) is None


def test_every_id_normalises_to_itself():
    assert [normalise(license_id) for license_id in LICENSES] == list(LICENSES)


@pytest.mark.parametrize(("value", "version"), [
    ("CC BY-SA 4.0", "4.0"), ("CC-BY-NC-ND-3.0-DE", "3.0"), ("CC BY 4", "4.0"), ("by-sa", None),
    ("https://creativecommons.org/licenses/by/2.0/", "2.0"), ("http://creativecommons.org/licenses/by-sa/2.5/dk/", "2.5"),
    ("https://creativecommons.org/licenses/by/", None), ("CC0", "1.0"), ("publicdomain", "1.0"), ("sampling+", "1.0"),
])
def test_parse_keeps_the_version_the_source_states(value, version):
    assert parse(value).version == version


def test_parse_gives_id_and_version():
    assert parse("Attribution-ShareAlike 2.0 Generic") == License("by-sa", "2.0")


def test_non_string_values_name_no_licence():
    assert parse(4.0) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("license_id", ["by", "by-sa", "by-nc", "by-nd", "by-nc-sa", "by-nc-nd", "sampling+", "nc-sampling+"])
def test_creative_commons_licences_require_attribution(license_id):
    assert requires_attribution(license_id)


@pytest.mark.parametrize("license_id", ["cc0", "pdm", None, "unknown"])
def test_public_domain_and_unknown_licences_require_no_attribution(license_id):
    assert not requires_attribution(license_id)


def test_requires_attribution_reads_any_spelling():
    assert requires_attribution("CC BY-SA 4.0") and not requires_attribution("CC0 1.0")


@pytest.mark.parametrize(("license_id", "version", "url"), [
    ("cc0", None, "https://creativecommons.org/publicdomain/zero/1.0/"),
    ("pdm", "1.0", "https://creativecommons.org/publicdomain/mark/1.0/"),
    ("by", "2.0", "https://creativecommons.org/licenses/by/2.0/"),
    ("by-sa", "4.0", "https://creativecommons.org/licenses/by-sa/4.0/"),
    ("by-nc-nd", "3.0", "https://creativecommons.org/licenses/by-nc-nd/3.0/"),
    ("sampling+", None, "https://creativecommons.org/licenses/sampling+/1.0/"),
    ("nc-sampling+", "1.0", "https://creativecommons.org/licenses/nc-sampling+/1.0/"),
])
def test_license_url_is_the_canonical_deed(license_id, version, url):
    assert license_url(license_id, version) == url


@pytest.mark.parametrize("license_id", LICENSES)
def test_a_canonical_deed_url_reads_back_as_its_licence(license_id):
    url = license_url(license_id, "4.0")
    assert normalise(url) == license_id


def test_a_versioned_licence_without_a_version_has_no_url():
    assert license_url("by-sa") is None


def test_an_unknown_id_has_no_url():
    assert license_url("gpl", "3.0") is None


def test_allow_list_in_ids_stays_as_written():
    assert normalise_allow_list(["cc0", "pdm", "by", "by-sa"]) == frozenset({"cc0", "pdm", "by", "by-sa"})


def test_allow_list_accepts_common_spellings():
    assert normalise_allow_list(["CC-BY", "CC BY-SA 4.0", "CC0 1.0", "publicdomain"]) == frozenset(
        {"by", "by-sa", "cc0", "pdm"})


def test_allow_list_as_one_comma_separated_string():
    assert normalise_allow_list("cc0, by ,by-sa") == frozenset({"cc0", "by", "by-sa"})


def test_unset_allow_list_stays_unset():
    assert normalise_allow_list(None) is None


def test_allow_list_with_an_unknown_entry_is_an_error_naming_each():
    with pytest.raises(UnknownLicense, match=r"'cc-bye'.*'gpl'"):
        normalise_allow_list(["cc0", "cc-bye", "gpl"])


def test_an_empty_allow_list_entry_is_an_error():
    with pytest.raises(UnknownLicense):
        normalise_allow_list("cc0,,by")


def test_unknown_licence_is_a_value_error():
    assert issubclass(UnknownLicense, ValueError)  # pydantic validators and CLI parsing report it as bad input


def test_without_an_allow_list_every_item_is_allowed():
    assert is_allowed(None, None) and is_allowed("by-nc", None)


@pytest.mark.parametrize(("license_id", "allowed"), [
    ("cc0", True), ("by", True), ("by-sa", True), ("pdm", False), ("by-nc", False), ("by-nc-sa", False),
    ("sampling+", False), (None, False), ("unknown", False),
])
def test_allow_list_accepts_only_what_it_names(license_id, allowed):
    assert is_allowed(license_id, ["cc0", "by", "by-sa"]) is allowed


def test_allow_list_by_does_not_accept_its_variants():
    assert [is_allowed(license_id, ["CC-BY"]) for license_id in ("by-sa", "by-nc", "by-nd", "by")] == [
        False, False, False, True]


def test_is_allowed_normalises_both_sides():
    assert is_allowed("CC BY-SA 4.0", ["cc-by-sa"])
    assert is_allowed("https://creativecommons.org/publicdomain/zero/1.0/", ["CC0"])


def test_is_allowed_takes_a_normalised_allow_list():
    allowed = normalise_allow_list(["CC-BY"])
    assert is_allowed("by", allowed) and not is_allowed("by-sa", allowed)


def test_an_empty_allow_list_accepts_nothing():
    assert not any(is_allowed(license_id, []) for license_id in LICENSES)


def test_is_allowed_with_an_unknown_allow_list_entry_is_an_error():
    with pytest.raises(UnknownLicense):
        is_allowed("by", ["by", "bogus"])


@pytest.mark.parametrize(("name", "url", "version", "resolved"), [
    ("by-sa", None, "4.0", ("by-sa", "https://creativecommons.org/licenses/by-sa/4.0/")),
    ("CC BY 2.0", None, None, ("by", "https://creativecommons.org/licenses/by/2.0/")),
    ("cc0", None, None, ("cc0", "https://creativecommons.org/publicdomain/zero/1.0/")),
    ("by-sa", None, None, ("by-sa", None)),
    (None, "https://creativecommons.org/licenses/by-nc/3.0/", None, ("by-nc", "https://creativecommons.org/licenses/by-nc/3.0/")),
    ("https://creativecommons.org/licenses/by-nd/2.5/", None, None, ("by-nd", "https://creativecommons.org/licenses/by-nd/2.5/")),
    ("cc-by", "https://creativecommons.org/licenses/by/2.0/", None, ("by", "https://creativecommons.org/licenses/by/2.0/")),
    ("CC BY 2.0", "https://www.flickr.com/creativecommons/", None, ("by", "https://www.flickr.com/creativecommons/")),
    ("all rights reserved", None, None, (None, None)),
    ("unknown", "https://example.org/terms", None, (None, "https://example.org/terms")),
    (None, "see the page", None, (None, None)),
    (None, None, None, (None, None)),
])
def test_resolve_gives_the_id_and_the_stated_or_canonical_url(name, url, version, resolved):
    assert resolve(name, url, version) == resolved


def test_resolve_refuses_to_choose_between_a_name_and_a_url_that_disagree():
    url = "https://creativecommons.org/licenses/by-nc/4.0/"
    assert resolve("CC BY 4.0", url) == (None, url)


def test_resolve_keeps_the_stated_url_rather_than_the_canonical_one():
    url = "https://creativecommons.org/licenses/by/2.0/legalcode"
    assert resolve("by", url, "2.0").license_url == url


def test_every_flickr_licence_id_maps_to_a_licence_or_to_none():
    from chunk_worker.licenses import FLICKR, from_flickr

    assert from_flickr("4") == ("by", "https://creativecommons.org/licenses/by/2.0/")
    assert from_flickr(12) == ("by-sa", "https://creativecommons.org/licenses/by-sa/4.0/")
    assert from_flickr("10") == ("pdm", "https://creativecommons.org/publicdomain/mark/1.0/")
    assert [key for key, found in FLICKR.items() if found is None] == ["0", "7", "8"]
    assert from_flickr("99") == (None, None) and from_flickr(None) == (None, None)


def test_flickr_and_inaturalist_filters_name_only_what_they_can_serve():
    from chunk_worker.licenses import flickr_filter, inaturalist_filter

    assert flickr_filter(frozenset({"by-sa"})) == "5,12"
    assert flickr_filter(frozenset({"sampling+"})) == ""
    assert flickr_filter(None) is None
    assert inaturalist_filter(frozenset({"cc0", "by-nc-sa", "pdm"})) == "cc0,cc-by-nc-sa"
    assert inaturalist_filter(frozenset({"pdm"})) == ""


@pytest.mark.parametrize(("code", "expected"), [("cc-by-nc", "by-nc"), ("cc0", "cc0"), ("cc-by-nc-nd", "by-nc-nd"),
                                               ("CC BY-SA 3.0", "by-sa"), ("Public domain", "pdm")])
def test_provider_spellings_normalise(code, expected):
    from chunk_worker.licenses import normalise

    assert normalise(code) == expected
