-- The complete, not yet folded observations of $practices: every searchFilter the practice
-- needs (core.dim_practice) has a meta.sync_window unit at that instant.
with

needed as (
    select practice_ods,
           1 + (case when accepts_111_booking then 1 else 0 end) + len(booking_hubs) as filters
    from core.dim_practice
),

observations as (
    -- Units of a quarantined batch (warehouse/quality.py) are never folded: without
    -- them the observation is incomplete until a passing batch replaces them.
    select w.practice_ods, w.window_start, w.window_end, w.observed_at,
           count(distinct w.filter_key) as filters, max(w.load_id) as load_id
    from meta.sync_window as w
    anti join meta.quarantine as q
        on q.practice_ods = w.practice_ods and q.stream = w.stream and q.load_id = w.load_id
    where w.practice_ods in (select unnest($practices::varchar[]))
    group by all
    having bool_or(w.folded_at is null)
)

select o.practice_ods, o.window_start, o.window_end, o.observed_at, o.load_id
from observations as o
join needed as n using (practice_ods)
where o.filters >= n.filters
