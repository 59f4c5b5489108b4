"""National reference data for building a practice registry.

- `ods`: the ODS Organisation Reference Data (ORD) API: practices, their sub-ICB location,
  ICB, NHS region and PCN;
- `sds`: the Spine Directory Service FHIR API: each practice's ASID and GP Connect service
  root for the slot-search interaction;
- `sources`: NHS Digital's monthly list-size CSV, the 111 direct-booking workbook CSV, the
  111 provider name mapping and the ICB's extended-access hub file;
- `cache`: every remote answer cached on disk, so a build works offline and says what is stale;
- `build`: `build_registry` (registry + per-practice findings) and `diff_registries`;
- `runner`: one build end to end, shared by `slotsync registry build` and the monthly
  `registry_refresh` flow.

The defaults below live here, importing nothing, so the CLI can show them without loading
the HTTP clients.
"""

from pathlib import Path

DEFAULT_ORD_URL = "https://directory.spineservices.nhs.uk/ORD/2-0-0"
DEFAULT_SDS_URL = "https://api.service.nhs.uk/spine-directory/FHIR/R4"
DEFAULT_CACHE_DIR = Path("var/reference-cache")
