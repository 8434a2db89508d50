"""Plain text read as a number (services/common/fields.py)."""

import pytest

from services.common.fields import whole_number


@pytest.mark.parametrize(("raw", "expected"), [
    ("0", 0), ("42", 42), ("007", 7),
    ("²", None), ("٣", None), ("-1", None), ("+1", None), (" 1", None), ("1.0", None),
    ("", None), (None, None),
])
def test_whole_number_reads_ascii_digits_only(raw, expected):
    assert whole_number(raw) == expected
