-- Grain: one row per batch being validated: (practice, stream, load) of `quality_units`.
--   slot_rows            slots staged by the batch, over all its units
--   previous_slot_rows   slots of the same practice's previous validated batch of the same
--                        flow (nightly with nightly, intraday with intraday) and stream
--   expected_free_slots  slots the warehouse still holds free (slot history, as folded before
--                        this batch) that start after this observation inside its windows
--   continuity_ok        false when the previous batch had slots, this one has none, and at
--                        least 10 slots were still expected free: a practice that suddenly
--                        returns nothing is flagged, not accepted silently, while the last few
--                        slots of a horizon booked out (an intraday run late on a Friday
--                        sees Friday evening and Saturday) are accepted. The comparison is with
--                        the previous batch whatever its outcome, so an empty diary seen twice
--                        in a row is accepted as real. Scheduled stream (`slots`) only.
--   known_practice       the practice is in the registry of the load (core.dim_practice)
--   hours_behind_latest  how long before the newest observation of its stream the batch was
--                        observed (freshness: e.g. a batch left over from a load that died)
with

units as (
    select * from quality_units
),

batches as (
    select practice_ods, stream, load_id, max(observed_at) as observed_at,
           min(window_start) as window_start, max(window_end) as window_end
    from units
    group by all
),

expected as (
    select b.practice_ods, b.stream, b.load_id, count(*) as expected_free_slots
    from batches as b
    join core.fct_slot_history as h
      on h.practice_ods = b.practice_ods
     and h.disappeared_at is null
     and h.start_at > b.observed_at
     and h.start_at >= b.window_start and h.start_at < b.window_end
    where h.practice_ods between $first_practice and $last_practice
    group by all
),

slot_counts as (
    select u.practice_ods, u.stream, u.load_id, count(*) as slot_rows
    from staging.stg_gpconnect__slots as s
    join units as u
      on s.practice_ods = u.practice_ods and s.filter_key = u.filter_key
     and s.window_start = u.window_start and s.window_end = u.window_end
     and s.observed_at = u.observed_at
    where s.observed_at between $first_observed and $last_observed
      and s.practice_ods between $first_practice and $last_practice
    group by all
),

with_flow as (
    select b.*, l.flow_name
    from batches as b
    left join meta.load_ledger as l using (load_id)
),

latest as (
    select stream, max(observed_at) as latest_observed_at
    from meta.sync_window
    group by all
),

previous as (
    select w.practice_ods, w.stream, w.load_id, q.slot_rows as previous_slot_rows
    from with_flow as w
    join meta.quality_batch as q
      on q.practice_ods = w.practice_ods and q.stream = w.stream and q.observed_at < w.observed_at
    join meta.load_ledger as ql on ql.load_id = q.load_id and ql.flow_name is not distinct from w.flow_name
    qualify row_number() over (
        partition by w.practice_ods, w.stream, w.load_id order by q.observed_at desc, q.validated_at desc
    ) = 1
)

select
    w.practice_ods,
    w.stream,
    w.load_id,
    w.observed_at,
    coalesce(c.slot_rows, 0)::integer as slot_rows,
    coalesce(p.previous_slot_rows, 0)::integer as previous_slot_rows,
    -- Scheduled syncs only: a backfill may well find nothing left to book in the past.
    coalesce(e.expected_free_slots, 0)::integer as expected_free_slots,
    w.stream <> 'slots'
        or not (coalesce(p.previous_slot_rows, 0) > 0 and coalesce(c.slot_rows, 0) = 0
                and coalesce(e.expected_free_slots, 0) >= 10) as continuity_ok,
    w.practice_ods in (select practice_ods from core.dim_practice) as known_practice,
    coalesce(date_diff('second', w.observed_at, t.latest_observed_at) / 3600.0, 0.0) as hours_behind_latest
from with_flow as w
left join latest as t using (stream)
left join slot_counts as c using (practice_ods, stream, load_id)
left join previous as p using (practice_ods, stream, load_id)
left join expected as e using (practice_ods, stream, load_id)
order by w.practice_ods, w.stream, w.load_id
