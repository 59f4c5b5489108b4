"""Who books: naming and classifying the organisations that make bookings.

A booking's organisation is identified by its ODS code, whether it came from the simulation
(practice staff, NHS 111, a hub) or from a consumer's POST. Classifying by ODS code lets
ground truth say "booked by NHS 111" for a POST from the 111 provider as well.
"""

from __future__ import annotations

from sandbox.book import GP_PRACTICE, URGENT_CARE, EstateIndex
from sandbox.diary import BookerKind, BookingOrganisation
from sandbox.estate import NHS111_PROVIDER_NAMES


class OrganisationDirectory:
    def __init__(self, index: EstateIndex) -> None:
        self._index = index

    def kind_of(self, ods: str) -> BookerKind:
        if ods in self._index.nhs111_providers:
            return "nhs111"
        if ods in self._index.hub_codes:
            return "hub"
        if ods in self._index.by_ods:
            return "practice"
        return "external"

    def name_of(self, ods: str) -> str:
        practice = self._index.by_ods.get(ods)
        if practice is not None:
            return practice.name
        return NHS111_PROVIDER_NAMES.get(ods, f"Organisation {ods}")

    def organisation(self, ods: str) -> BookingOrganisation:
        """The organisation as the simulation books for it, with the org type it searches as."""
        org_type = URGENT_CARE if self.kind_of(ods) == "nhs111" else GP_PRACTICE
        return BookingOrganisation(ods_code=ods, name=self.name_of(ods), org_type=org_type)
