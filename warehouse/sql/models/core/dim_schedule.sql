-- Grain: one row per (practice, schedule id): every Schedule a practice's slot searches
-- have returned, as of the latest observation that included it (staging.stg_gpconnect__
-- schedules). A slot's `schedule_id` joins here; a schedule's `location_id` joins
-- core.dim_location and its `practitioner_id` (null for sessions without a named clinician,
-- e.g. SystmOne nurse clinics) joins core.dim_practitioner.
--   service_category          the session's name as the practice's system shows it
--   practitioner_role_code    SDS job role of the session (GP Connect PractitionerRole
--                             extension), e.g. R0260 General Medical Practitioner
--   planning_horizon_*        the period the schedule covers, when the provider sends it
--   first_seen_at/last_seen_at  first and latest observation that returned the schedule
with

schedules as (
    -- Rows of quarantined batches (warehouse/quality.py) never feed core or marts.
    select s.* from staging.stg_gpconnect__schedules as s
    anti join meta.quarantine as q on q.practice_ods = s.practice_ods and q.load_id = s.load_id
    where s.schedule_id is not null
),

latest as (
    -- each schedule's latest row, with the first and latest observation that returned it
    select
        *,
        min(observed_at) over (partition by practice_ods, schedule_id) as first_seen_at,
        max(observed_at) over (partition by practice_ods, schedule_id) as last_seen_at
    from schedules
    qualify row_number() over (
        partition by practice_ods, schedule_id
        order by observed_at desc, window_start desc, filter_key, version_id desc nulls last,
                 location_id, practitioner_id, service_category
    ) = 1
)

select
    latest.practice_ods,
    latest.schedule_id,
    latest.location_id,
    latest.practitioner_id,
    latest.service_category,
    latest.practitioner_role_code,
    latest.practitioner_role_display,
    latest.planning_horizon_start_at,
    latest.planning_horizon_end_at,
    latest.version_id,
    latest.first_seen_at,
    latest.last_seen_at,
    latest.load_id
from latest
order by practice_ods, schedule_id
