-- Grain: one slot still reserved for NHS 111 and free at its latest observation, starting
-- between $now and $until: what the release flow (flows/release.py) may give back to the
-- practice once its policy says it is due.
--
-- A live re-check made after that observation already found the slot gone (booked or
-- removed) or no longer reserved: that verdict stands until a newer snapshot of the slot, so
-- the slot is not searched again and the audit gets no repeated skip every 15 minutes. A
-- newer snapshot (last_checked_at past the verdict) makes it a candidate again if it is
-- still reserved and free, e.g. freed by a cancellation.
select h.practice_ods, h.slot_id, h.start_at, h.end_at, h.start_text, h.slot_type, h.schedule_id,
       h.last_checked_at
from core.fct_slot_history as h
where h.last_audience = 'nhs111'
  and h.disappeared_at is null
  and h.start_at > $now
  and h.start_at <= $until
  and not exists (
      select 1
      from audit.release_decision as d
      where d.practice_ods = h.practice_ods
        and d.slot_id = h.slot_id
        and d.outcome in ('skipped_gone_since_snapshot', 'skipped_no_longer_reserved')
        and d.as_of >= h.last_checked_at
  )
order by h.practice_ods, h.start_at, h.slot_id
