-- Grain: one row per practice (kind = practice) per UK calendar day that any completed
-- observation covered. NHS 111 quota compliance counts slots *reserved* for NHS 111
-- (returned to the 111 provider's search but not to an unfiltered search) that were offered
-- on that day at any observation, because only those are protected for 111; `quota` is
-- max(1, floor(list_size / 3000)) on core days (Mon-Fri), from the list size in force on that
-- day (core.int_list_size_in_force: a monthly change moves the quota from its day on and
-- leaves earlier days' figures alone). Unrestricted slots 111 could also see are reported
-- alongside (`nhs111_visible_free`) but do not count.
with

practices as (
    select * from core.dim_practice where kind = 'practice'
),

slots as (
    select * from core.int_slot_states
),

sizes as (
    select * from core.int_list_size_in_force
),

covered_days as (
    select distinct
        practice_ods,
        unnest(generate_series(
            (window_start at time zone 'Europe/London')::date,
            ((window_end - interval 1 second) at time zone 'Europe/London')::date,
            interval 1 day
        ))::date as slot_day
    from meta.sync_window as w
    -- Days only a quarantined batch covered were not captured (warehouse/quality.py).
    anti join meta.quarantine as q
        on q.practice_ods = w.practice_ods and q.stream = w.stream and q.load_id = w.load_id
    where w.stream = 'slots'
),

per_day as (
    select
        practice_ods,
        slot_day,
        count(*) filter (where ever_nhs111) as nhs111_reserved_offered,
        count(*) filter (where last_audience = 'nhs111' and state = 'free') as nhs111_reserved_free,
        -- 111 can see its reserved slots and every unrestricted one
        count(*) filter (where state = 'free' and last_audience in ('general', 'nhs111'))
            as nhs111_visible_free,
        count(*) filter (where ever_nhs111 and state = 'unused') as nhs111_reserved_unused
    from slots
    group by all
),

final as (
    select
        p.practice_ods,
        p.practice_name,
        p.clinical_system,
        p.sub_icb_code,
        p.icb_code,
        p.region_code,
        p.pcn_code,
        -- A practice with no recorded sizes (written straight into dim_practice): its current one.
        coalesce(z.list_size, p.list_size) as list_size,
        p.accepts_111_booking,
        d.slot_day,
        isodow(d.slot_day) <= 5 as is_core_day,
        coalesce(z.nhs111_daily_quota, p.nhs111_daily_quota) as quota,
        coalesce(s.nhs111_reserved_offered, 0) as nhs111_reserved_offered,
        coalesce(s.nhs111_reserved_free, 0) as nhs111_reserved_free,
        coalesce(s.nhs111_visible_free, 0) as nhs111_visible_free,
        coalesce(s.nhs111_reserved_unused, 0) as nhs111_reserved_unused,
        case
            when isodow(d.slot_day) <= 5
                then coalesce(s.nhs111_reserved_offered, 0) >= coalesce(z.nhs111_daily_quota, p.nhs111_daily_quota)
        end as meets_quota
    from covered_days as d
    join practices as p using (practice_ods)
    left join per_day as s using (practice_ods, slot_day)
    left join sizes as z
        on z.practice_ods = d.practice_ods and d.slot_day >= z.in_force_from and d.slot_day < z.in_force_until
)

select * from final
order by practice_ods, slot_day
