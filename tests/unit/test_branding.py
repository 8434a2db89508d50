"""The brand settings' rules: colours parsed strictly, AA contrast kept whatever the
primary colour, the logo a URL or an image file that exists."""

from __future__ import annotations

import pytest

from services.identity.branding import (
    AA_NORMAL_TEXT,
    contrast,
    parse_color,
    parse_logo,
    readable_on_white,
    stylesheet,
    text_on,
)


@pytest.mark.parametrize(("raw", "parsed"), [
    ("#1F5FA8", "#1f5fa8"), ("1f5fa8", "#1f5fa8"), (" #26a ", "#2266aa"), ("#FFF", "#ffffff"),
])
def test_colours_are_normalised(raw, parsed):
    assert parse_color(raw) == parsed


@pytest.mark.parametrize("raw", ["", "blue", "#12345", "#1f5fa8;}body{display:none", "#ggg"])
def test_anything_but_a_hex_colour_is_refused(raw):
    with pytest.raises(ValueError, match="hex colour"):
        parse_color(raw)


def test_contrast_ratios_are_wcag_2():
    assert contrast("#ffffff", "#000000") == pytest.approx(21)
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)


@pytest.mark.parametrize("primary", ["#1f5fa8", "#ffcc00", "#00ff00", "#777777", "#000000",
                                     "#ffffff", "#e30613", "#7fdbff"])
def test_text_and_links_keep_aa_contrast_whatever_the_primary_colour(primary):
    assert contrast(text_on(primary), primary) >= AA_NORMAL_TEXT
    assert contrast(readable_on_white(primary), "#ffffff") >= AA_NORMAL_TEXT
    assert f"--brand:{primary};" in stylesheet(primary)


def test_the_logo_is_empty_a_url_or_an_image_file(tmp_path):
    assert parse_logo("") == ""
    assert parse_logo("https://id.example.com/logo.svg") == "https://id.example.com/logo.svg"
    image = tmp_path / "logo.PNG"
    image.write_bytes(b"png")
    assert parse_logo(str(image)) == str(image.resolve())
    with pytest.raises(ValueError, match="no such file"):
        parse_logo(str(tmp_path / "missing.svg"))
    with pytest.raises(ValueError, match="expected an image"):
        parse_logo("/etc/passwd")
