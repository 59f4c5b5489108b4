-- Grain: one row per quarantined batch not resolved yet: a practice's data of one load that
-- failed a critical data-quality expectation and was not published (warehouse/quality.py).
-- A re-run that passes promotes it and the row disappears from here.
--   failed_expectations  the critical expectations it failed
--   detail               each failure with the number of rows and its meaning
--   next_step            what the operator does about it
select
    q.practice_ods,
    p.practice_name,
    p.sub_icb_code,
    q.stream,
    q.observed_at,
    array_to_string(q.failed_expectations, ', ') as failed_expectations,
    q.detail,
    q.next_step,
    q.load_id
from meta.quarantine as q
left join core.dim_practice as p using (practice_ods)
where q.resolved_at is null
order by q.observed_at, q.practice_ods
