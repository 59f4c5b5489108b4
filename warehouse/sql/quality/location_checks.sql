-- Grain: one row per staged Location of a batch being validated (`quality_locations`).
--   organisation_referenced  the location names its managing Organization (the last link of
--                            slot -> schedule -> location -> organisation)
select
    l.practice_ods,
    l.stream,
    l.batch_load_id as load_id,
    l.filter_key,
    l.observed_at,
    coalesce(l.location_id, '') as location_id,
    l.managing_organization_id is not null as organisation_referenced
from quality_locations as l
