"""National reference data for building a practice registry.

- `ods`: the ODS Organisation Reference Data (ORD) API: practices, their sub-ICB location,
  ICB, NHS region and PCN;
- `sds`: the Spine Directory Service FHIR API: each practice's ASID and GP Connect service
  root for the slot-search interaction;
- `sources`: NHS Digital's monthly list-size CSV, the 111 direct-booking workbook CSV, the
  111 provider name mapping and the ICB's extended-access hub file;
- `cache`: every remote answer cached on disk, so a build works offline and says what is stale;
- `build`: `build_registry` (registry + per-practice findings) and `diff_registries`.
"""
