-- Grain: one row per practice (kind = practice) per UK calendar day that any completed
-- observation covered. NHS 111 quota compliance counts slots *reserved* for NHS 111
-- (returned to the 111 provider's search but not to an unfiltered search), because only
-- those are protected for 111; unrestricted slots 111 could also see are reported
-- alongside. Core days are Monday to Friday.
with

practices as (
    select * from core.dim_practice where kind = 'practice'
),

observations as (
    select * from core.int_slot_observations
),

covered_days as (
    select distinct
        practice_ods,
        unnest(generate_series(
            (window_start at time zone 'Europe/London')::date,
            ((window_end - interval 1 second) at time zone 'Europe/London')::date,
            interval 1 day
        ))::date as slot_day
    from meta.sync_window
    where stream = 'slots'
),

latest_observation as (
    select practice_ods, slot_day, max(observed_at) as observed_at
    from observations
    group by all
),

reserved_offered as (
    select practice_ods, slot_day, count(distinct slot_id) as nhs111_reserved_offered
    from observations
    where audience = 'nhs111'
    group by all
),

free_now as (
    select
        o.practice_ods,
        o.slot_day,
        count(*) filter (where o.audience = 'nhs111') as nhs111_reserved_free,
        count(*) filter (where o.in_nhs111_search) as nhs111_visible_free
    from observations as o
    join latest_observation as l using (practice_ods, slot_day, observed_at)
    group by all
),

final as (
    select
        p.practice_ods,
        p.practice_name,
        p.clinical_system,
        p.ccg_code,
        p.pcn_code,
        p.list_size,
        p.accepts_111_booking,
        d.slot_day,
        isodow(d.slot_day) <= 5 as is_core_day,
        p.nhs111_daily_quota as quota,
        coalesce(r.nhs111_reserved_offered, 0) as nhs111_reserved_offered,
        coalesce(f.nhs111_reserved_free, 0) as nhs111_reserved_free,
        coalesce(f.nhs111_visible_free, 0) as nhs111_visible_free,
        case
            when isodow(d.slot_day) <= 5 then coalesce(r.nhs111_reserved_offered, 0) >= p.nhs111_daily_quota
        end as meets_quota
    from covered_days as d
    join practices as p using (practice_ods)
    left join reserved_offered as r using (practice_ods, slot_day)
    left join free_now as f using (practice_ods, slot_day)
)

select * from final
order by practice_ods, slot_day
