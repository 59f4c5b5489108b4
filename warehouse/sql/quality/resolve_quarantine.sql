-- A passing batch resolves every open quarantine of the practice it re-observes or follows:
-- 'promoted' for a re-observation of the same instant, 'superseded' for a later one.
update meta.quarantine as q
set resolved_at = coalesce($now::timestamptz, now()),
    resolved_by_load_id = b.load_id,
    resolution = case when b.observed_at = q.observed_at then 'promoted' else 'superseded' end
from (
    select practice_ods, stream, arg_max(load_id, observed_at) as load_id,
           max(observed_at) as observed_at
    from quality_batch_rows
    where outcome = 'passed'
    group by all
) as b
where q.practice_ods = b.practice_ods and q.stream = b.stream
  and q.resolved_at is null and q.observed_at <= b.observed_at
