"""Synthetic people: clinicians who hold sessions and patients who get booked.

Nobody here is real. NHS numbers come from the `999` range that NHS England reserves for
testing, and every number carries a valid Modulus 11 check digit so consumers that validate
NHS numbers accept them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from sandbox.determinism import stable_random

Gender = Literal["female", "male"]

_FAMILY_NAMES = (
    "Ashworth",
    "Bailey",
    "Barker",
    "Bennett",
    "Bishop",
    "Bradley",
    "Carter",
    "Chapman",
    "Clarke",
    "Cole",
    "Collins",
    "Cooper",
    "Dawson",
    "Dixon",
    "Edwards",
    "Ellis",
    "Fisher",
    "Fletcher",
    "Foster",
    "Gardner",
    "Gibson",
    "Graham",
    "Grant",
    "Hall",
    "Harding",
    "Harper",
    "Hayes",
    "Holland",
    "Hudson",
    "Hughes",
    "Hunt",
    "Jennings",
    "Kaur",
    "Khan",
    "Lambert",
    "Lawrence",
    "Lloyd",
    "Marsh",
    "Mason",
    "Mills",
    "Moss",
    "Murray",
    "Nash",
    "Norris",
    "Osei",
    "Owen",
    "Palmer",
    "Patel",
    "Pearce",
    "Porter",
    "Powell",
    "Reid",
    "Reynolds",
    "Rhodes",
    "Rowe",
    "Saunders",
    "Shah",
    "Sharp",
    "Simpson",
    "Spencer",
    "Stone",
    "Sutton",
    "Thornton",
    "Tucker",
    "Turner",
    "Wade",
    "Walsh",
    "Warren",
    "Webb",
    "Wells",
    "Whitehead",
    "Willis",
    "Wood",
    "Wright",
    "Young",
)
_GIVEN_NAMES: dict[Gender, tuple[str, ...]] = {
    "female": (
        "Abigail",
        "Alice",
        "Amelia",
        "Anna",
        "Charlotte",
        "Chloe",
        "Claire",
        "Deborah",
        "Eleanor",
        "Emma",
        "Fiona",
        "Grace",
        "Hannah",
        "Helen",
        "Isla",
        "Jane",
        "Julia",
        "Karen",
        "Laura",
        "Lucy",
        "Margaret",
        "Nicola",
        "Olivia",
        "Priya",
        "Rachel",
        "Ruth",
        "Sarah",
        "Sophie",
        "Susan",
        "Zara",
    ),
    "male": (
        "Adam",
        "Alexander",
        "Andrew",
        "Ben",
        "Callum",
        "Christopher",
        "Daniel",
        "David",
        "Edward",
        "George",
        "Harry",
        "Ian",
        "James",
        "John",
        "Jonathan",
        "Kwame",
        "Liam",
        "Mark",
        "Matthew",
        "Michael",
        "Mohammed",
        "Nathan",
        "Oliver",
        "Paul",
        "Peter",
        "Raj",
        "Richard",
        "Samuel",
        "Thomas",
        "William",
    ),
}

NHS_TEST_RANGE_BASE = 999_000_000  # the first nine digits of 999 000 000 x
NHS_TEST_RANGE_SIZE = 1_000_000


def nhs_check_digit(first_nine: str) -> int | None:
    """Modulus 11 check digit for nine digits, or None when the body is unusable (check 10)."""
    total = sum(int(digit) * weight for digit, weight in zip(first_nine, range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        return 0
    return None if check == 10 else check


def is_valid_nhs_number(text: str) -> bool:
    if len(text) != 10 or not text.isdigit():
        return False
    return nhs_check_digit(text[:9]) == int(text[9])


def nhs_numbers_in_block(first_body: int, block_size: int, limit: int) -> list[str]:
    """Up to `limit` valid test-range NHS numbers from `block_size` consecutive bodies."""
    numbers: list[str] = []
    for body in range(first_body, first_body + block_size):
        if len(numbers) == limit:
            break
        nine = f"{NHS_TEST_RANGE_BASE + body % NHS_TEST_RANGE_SIZE:09d}"
        check = nhs_check_digit(nine)
        if check is not None:
            numbers.append(f"{nine}{check}")
    return numbers


@dataclass(frozen=True, slots=True)
class PersonName:
    family: str
    given: str
    prefix: str


@dataclass(frozen=True, slots=True)
class Patient:
    """A registered patient; `logical_id` is the provider's opaque Patient id."""

    logical_id: str
    nhs_number: str
    name: PersonName
    gender: Gender
    birth_date: date


def synthetic_name(rng_parts: tuple[object, ...], gender: Gender, prefix: str) -> PersonName:
    rng = stable_random(*rng_parts, "name")
    return PersonName(family=rng.choice(_FAMILY_NAMES), given=rng.choice(_GIVEN_NAMES[gender]), prefix=prefix)


def synthetic_patient(seed: int, nhs_number: str, logical_id: str) -> Patient:
    rng = stable_random(seed, nhs_number, "patient")
    gender: Gender = rng.choice(("female", "male"))
    age_days = rng.randint(0, 95 * 365)
    adult_prefix = {"female": rng.choice(("Mrs", "Ms", "Miss")), "male": "Mr"}[gender]
    prefix = adult_prefix if age_days >= 18 * 365 else {"female": "Miss", "male": "Master"}[gender]
    return Patient(
        logical_id=logical_id,
        nhs_number=nhs_number,
        name=synthetic_name((seed, nhs_number), gender, prefix),
        gender=gender,
        birth_date=date(2026, 1, 1) - timedelta(days=age_days),
    )
