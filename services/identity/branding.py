"""The program's brand on identity's pages: name, logo and primary colour (settings
``BRAND_NAME``, ``BRAND_LOGO``, ``BRAND_PRIMARY_COLOR``).

The colours derived from the primary one keep WCAG AA contrast whatever it is: text on
a primary-coloured button is white or black, whichever reads better, and links
use the primary colour darkened until it reads on white.
"""

from __future__ import annotations

import re
from pathlib import Path

LOGO_TYPES = {".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg",
              ".jpeg": "image/jpeg", ".webp": "image/webp", ".gif": "image/gif"}
WHITE = "#ffffff"
DARK = "#000000"  # every colour reaches 4.5:1 with white or with black (not so with grey)
AA_NORMAL_TEXT = 4.5
_HEX = re.compile(r"#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})")


def parse_color(raw: str) -> str:
    """``#1f5fa8``, ``1f5fa8`` or ``#26a`` → ``#1f5fa8`` (lower case, six digits)."""
    found = _HEX.fullmatch(raw.strip())
    if not found:
        raise ValueError("expected a hex colour such as #1f5fa8")
    digits = found.group(1).lower()
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return "#" + digits


def parse_logo(raw: str) -> str:
    """Empty (the built-in logo), an http(s) URL, or an image file that exists."""
    value = raw.strip()
    if not value or value.startswith(("https://", "http://")):
        return value
    path = Path(value)
    if path.suffix.lower() not in LOGO_TYPES:
        raise ValueError(f"expected an image ({', '.join(sorted(LOGO_TYPES))}) or an http(s) URL")
    if not path.is_file():
        raise ValueError(f"no such file: {value}")
    return str(path.resolve())


def logo_is_url(logo: str) -> bool:
    return logo.startswith(("https://", "http://"))


def _luminance(color: str) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(first: str, second: str) -> float:
    """WCAG 2 contrast ratio of two ``#rrggbb`` colours (1 to 21)."""
    lighter, darker = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def text_on(background: str) -> str:
    """White or black, whichever contrasts more with ``background``."""
    return WHITE if contrast(WHITE, background) >= contrast(DARK, background) else DARK


def readable_on_white(color: str) -> str:
    """``color``, darkened step by step until it reads as text on white."""
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    while contrast(color, WHITE) < AA_NORMAL_TEXT:
        r, g, b = (int(v * 0.9) for v in (r, g, b))
        color = f"#{r:02x}{g:02x}{b:02x}"
    return color


def stylesheet(primary: str) -> str:
    """The CSS custom properties of the brand (served as /brand.css)."""
    return (f":root{{--brand:{primary};--brand-contrast:{text_on(primary)};"
            f"--brand-link:{readable_on_white(primary)}}}\n")
