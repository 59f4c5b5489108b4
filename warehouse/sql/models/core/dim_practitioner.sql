-- Grain: one row per (practice, practitioner id): every Practitioner a practice's slot
-- searches have returned, as of the latest observation that included them
-- (staging.stg_gpconnect__practitioners). Staff data is kept to identifiers and role only:
-- no names, no gender.
--   sds_user_id, sds_role_profile_id  the Spine Directory Service identifiers, when sent
--   practitioner_role_code/_display   SDS job role of the latest schedule naming them
--                                     (core.dim_schedule), e.g. R0260
--   first_seen_at/last_seen_at        first and latest observation that returned them
with

practitioners as (
    -- Rows of quarantined batches (warehouse/quality.py) never feed core or marts.
    select s.* from staging.stg_gpconnect__practitioners as s
    anti join meta.quarantine as q on q.practice_ods = s.practice_ods and q.load_id = s.load_id
    where s.practitioner_id is not null
),

latest as (
    -- each practitioner's latest row, with the first and latest observation that returned it
    select
        *,
        min(observed_at) over (partition by practice_ods, practitioner_id) as first_seen_at,
        max(observed_at) over (partition by practice_ods, practitioner_id) as last_seen_at
    from practitioners
    qualify row_number() over (
        partition by practice_ods, practitioner_id
        order by observed_at desc, window_start desc, filter_key, sds_user_id, sds_role_profile_id
    ) = 1
),

roles as (
    select practice_ods, practitioner_id, practitioner_role_code, practitioner_role_display
    from core.dim_schedule
    where practitioner_id is not null and practitioner_role_code is not null
    qualify row_number() over (
        partition by practice_ods, practitioner_id
        order by last_seen_at desc, planning_horizon_start_at desc nulls last, schedule_id desc
    ) = 1
)

select
    latest.practice_ods,
    latest.practitioner_id,
    latest.sds_user_id,
    latest.sds_role_profile_id,
    roles.practitioner_role_code,
    roles.practitioner_role_display,
    latest.first_seen_at,
    latest.last_seen_at,
    latest.load_id
from latest
left join roles using (practice_ods, practitioner_id)
order by practice_ods, practitioner_id
