-- Grain: one row per (practice, location id): every Location (surgery building or branch
-- site) a practice's slot searches have returned, as of the latest observation that included
-- it (staging.stg_gpconnect__locations). Schedules name their location (core.dim_schedule).
--   ods_site_code              the site's ODS code, when the provider sends one
--   managing_organization_id   the FHIR id of the Organization that runs the site
--   first_seen_at/last_seen_at first and latest observation that returned the location
with

locations as (
    -- Rows of quarantined batches (warehouse/quality.py) never feed core or marts.
    select s.* from staging.stg_gpconnect__locations as s
    anti join meta.quarantine as q on q.practice_ods = s.practice_ods and q.load_id = s.load_id
    where s.location_id is not null
),

latest as (
    -- each location's latest row, with the first and latest observation that returned it
    select
        *,
        min(observed_at) over (partition by practice_ods, location_id) as first_seen_at,
        max(observed_at) over (partition by practice_ods, location_id) as last_seen_at
    from locations
    qualify row_number() over (
        partition by practice_ods, location_id
        order by observed_at desc, window_start desc, filter_key, version_id desc nulls last,
                 location_name, managing_organization_id
    ) = 1
)

select
    latest.practice_ods,
    latest.location_id,
    latest.location_name,
    latest.location_status,
    latest.ods_site_code,
    latest.managing_organization_id,
    latest.version_id,
    latest.first_seen_at,
    latest.last_seen_at,
    latest.load_id
from latest
order by practice_ods, location_id
