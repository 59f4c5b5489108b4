-- Grain: one row per staged Location of a batch being validated (`quality_units`).
--   organisation_referenced  the location names its managing Organization (the last link of
--                            slot -> schedule -> location -> organisation)
select
    l.practice_ods,
    u.stream,
    u.load_id,
    l.filter_key,
    l.observed_at,
    coalesce(l.location_id, '') as location_id,
    l.managing_organization_id is not null as organisation_referenced
from staging.stg_gpconnect__locations as l
join quality_units as u
  on l.practice_ods = u.practice_ods and l.filter_key = u.filter_key
 and l.window_start = u.window_start and l.window_end = u.window_end
 and l.observed_at = u.observed_at
where l.observed_at between $first_observed and $last_observed
  and l.practice_ods between $first_practice and $last_practice
