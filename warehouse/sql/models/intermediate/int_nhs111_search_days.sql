-- Grain: one row per practice that accepts NHS 111 booking, per nightly observation (the
-- observed_at of a nightly_sync load whose general and NHS 111 searches both answered), per
-- UK core day (Mon-Fri) after the observation day that the searches covered.
-- A slot is *reserved* for NHS 111 when the NHS 111 provider's search returned it and the
-- unfiltered search at the same observation did not (the differential search). Quarantined
-- batches are left out, like everywhere else.
with

practices as (
    select practice_ods, nhs111_daily_quota as quota
    from core.dim_practice
    where kind = 'practice' and accepts_111_booking
),

searches as (
    select s.practice_ods, s.observed_at, s.load_id, s.filter_role, s.window_start, s.window_end
    from raw.gpc_slot_search as s
    join meta.load_ledger as l on l.load_id = s.load_id and l.flow_name = 'nightly_sync'
    join practices as p on p.practice_ods = s.practice_ods
    anti join meta.quarantine as q on q.practice_ods = s.practice_ods and q.load_id = s.load_id
    where s.filter_role in ('general', 'nhs111')
),

observations as (
    select practice_ods, observed_at
    from searches
    group by all
    having count(distinct filter_role) = 2
),

covered_days as (
    select distinct
        s.practice_ods,
        s.observed_at,
        unnest(generate_series(
            (s.window_start at time zone 'Europe/London')::date,
            ((s.window_end - interval 1 second) at time zone 'Europe/London')::date,
            interval 1 day
        ))::date as slot_day
    from searches as s
    semi join observations as o on o.practice_ods = s.practice_ods and o.observed_at = s.observed_at
    where s.filter_role = 'nhs111'
),

slots as (
    select
        s.practice_ods, s.observed_at, s.filter_role, s.slot_id, s.slot_type, s.delivery_channel,
        (s.start_at at time zone 'Europe/London')::date as slot_day
    from staging.stg_gpconnect__slots as s
    semi join observations as o on o.practice_ods = s.practice_ods and o.observed_at = s.observed_at
    where s.filter_role in ('general', 'nhs111')
),

reserved as (
    select n.*
    from slots as n
    anti join slots as g
        on g.filter_role = 'general' and g.practice_ods = n.practice_ods
        and g.observed_at = n.observed_at and g.slot_id = n.slot_id
    where n.filter_role = 'nhs111'
),

per_day as (
    select
        practice_ods, observed_at, slot_day,
        count(*) filter (where filter_role = 'nhs111') as nhs111_search_slots,
        count(*) filter (where filter_role = 'general') as general_search_slots
    from slots
    group by all
),

reserved_per_day as (
    select
        practice_ods, observed_at, slot_day,
        count(*) as reserved_slots,
        list_sort(list_distinct(list(coalesce(slot_type, '(none)')))) as reserved_slot_types,
        list_sort(list_distinct(list(coalesce(delivery_channel, '(none)')))) as reserved_channels
    from reserved
    group by all
),

final as (
    select
        d.practice_ods,
        d.observed_at,
        d.slot_day,
        p.quota,
        coalesce(s.nhs111_search_slots, 0) as nhs111_search_slots,
        coalesce(s.general_search_slots, 0) as general_search_slots,
        coalesce(r.reserved_slots, 0) as reserved_slots,
        coalesce(r.reserved_slot_types, []) as reserved_slot_types,
        coalesce(r.reserved_channels, []) as reserved_channels,
        coalesce(r.reserved_slots, 0) < p.quota as below_quota
    from covered_days as d
    join practices as p using (practice_ods)
    left join per_day as s using (practice_ods, observed_at, slot_day)
    left join reserved_per_day as r using (practice_ods, observed_at, slot_day)
    -- The observation day itself is partly past; weekends are not core days.
    where d.slot_day > (d.observed_at at time zone 'Europe/London')::date
      and isodow(d.slot_day) <= 5
)

select * from final
order by practice_ods, observed_at, slot_day
