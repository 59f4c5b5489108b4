-- Grain: one row per appointment a practice confirmed (Read Appointment found it) in the
-- loads whose batches are being validated. Reported as warnings: the practice's system is
-- the source of truth for appointments, and reconciliation explains each finding.
--   past_still_booked        false when the appointment ended before the observation yet is
--                            still `booked` (not fulfilled, cancelled or marked did-not-attend)
--   live_on_slot             live (booked) appointments the practice confirms on the same slot;
--                            more than 1 is a double booking
with

reads as (
    select *
    from raw.gpc_appointment_read
    where outcome = 'found'
      and load_id in (select distinct load_id from quality_units)
),

live_per_slot as (
    select practice_ods, load_id, slot_id, count(distinct appointment_id) as live
    from (select practice_ods, load_id, appointment_id, unnest(slot_ids) as slot_id from reads
          where status = 'booked')
    group by all
)

select
    r.practice_ods,
    'slots' as stream,
    r.load_id,
    r.observed_at,
    coalesce(r.status, '') as status,
    not (r.status = 'booked' and coalesce(r.end_at < r.observed_at, false)) as past_not_booked,
    coalesce(max(l.live), 0)::integer as live_on_slot
from reads as r
left join live_per_slot as l
  on l.practice_ods = r.practice_ods and l.load_id = r.load_id and list_contains(r.slot_ids, l.slot_id)
group by all
