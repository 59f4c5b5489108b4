-- Grain: one row per appointment a practice confirmed (Read Appointment found it), as of the
-- latest read of it observed within the batches being validated (`quality_units`), attributed
-- to the practice's newest batch there. Reported as warnings: the practice's system is the
-- source of truth for appointments, and reconciliation explains each finding.
--   past_not_booked   false when the appointment ended before the observation yet is still
--                     `booked` (not fulfilled, cancelled or marked did-not-attend)
--   live_on_slot      live (booked) appointments the practice confirms on the same slot; more
--                     than 1 is a double booking
with

batches as (
    select practice_ods, stream, load_id
    from (select distinct practice_ods, stream, load_id, observed_at from quality_units)
    qualify row_number() over (partition by practice_ods order by observed_at desc, load_id desc) = 1
),

reads as (
    -- Latest read per appointment, as staging.stg_gpconnect__appointment_reads picks it, so a
    -- re-run that read them again judges the same appointments.
    select r.*
    from raw.gpc_appointment_read as r
    semi join batches as b on b.practice_ods = r.practice_ods
    where r.outcome = 'found'
      and r.observed_at between $first_observed and $last_observed
      and r.practice_ods between $first_practice and $last_practice
    qualify row_number() over (
        partition by r.practice_ods, r.appointment_id order by r.observed_at desc, r.fetched_at desc
    ) = 1
),

live_per_slot as (
    select practice_ods, slot_id, count(distinct appointment_id) as live
    from (select practice_ods, appointment_id, unnest(slot_ids) as slot_id from reads
          where status = 'booked')
    group by all
)

select
    r.practice_ods,
    b.stream,
    b.load_id,
    coalesce(r.status, '') as status,
    not (r.status = 'booked' and coalesce(r.end_at < r.observed_at, false)) as past_not_booked,
    coalesce(max(l.live), 0)::integer as live_on_slot
from reads as r
join batches as b using (practice_ods)
left join live_per_slot as l
  on l.practice_ods = r.practice_ods and list_contains(r.slot_ids, l.slot_id)
group by all
