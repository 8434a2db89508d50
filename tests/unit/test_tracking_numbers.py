from hypothesis import given
from hypothesis import strategies as st

from services.common import tracking_numbers as tn

bodies = st.text(alphabet=tn.ALPHABET, min_size=8, max_size=8)


def number_for(body: str) -> str:
    return tn.format_number(body + tn._check_symbol(body))


def test_generated_numbers_are_valid_and_well_formed():
    for _ in range(200):
        number = tn.generate()
        assert tn.is_valid(number)
        assert len(number) == len("PTC-7K3M-9QX2-H")
        assert number.startswith("PTC-")


@given(bodies, st.integers(min_value=0, max_value=8), st.sampled_from(tn.ALPHABET))
def test_any_single_substitution_is_detected(body, position, replacement):
    compact = body + tn._check_symbol(body)
    if compact[position] == replacement:
        return
    altered = compact[:position] + replacement + compact[position + 1:]
    assert not tn.is_valid(tn.format_number(altered))


@given(bodies, st.integers(min_value=0, max_value=7))
def test_any_adjacent_transposition_is_detected(body, position):
    compact = body + tn._check_symbol(body)
    if compact[position] == compact[position + 1]:
        return
    swapped = compact[:position] + compact[position + 1] + compact[position] + compact[position + 2:]
    assert not tn.is_valid(tn.format_number(swapped))


@given(bodies)
def test_typing_variations_read_as_the_same_number(body):
    number = number_for(body)
    sloppy = " " + number.lower().replace("-", " ") + " "
    assert tn.is_valid(sloppy)
    assert tn.normalize(sloppy) == number


def test_ambiguous_letters_are_read_as_digits():
    number = number_for("10000000")
    assert tn.normalize(number.replace("1", "I", 1)) == number
    assert tn.normalize(number.replace("0", "O")) == number


def test_malformed_values_are_not_valid():
    for value in ["", "PTC", "ABC-1234-5678-9", "PTC-1234-5678", "PTC-1234-5678-9-0", "x" * 100, None]:
        assert not tn.is_valid(value)  # type: ignore[arg-type]
