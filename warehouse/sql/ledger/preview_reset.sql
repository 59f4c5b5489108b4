-- What a `windows reset` of $practice_ods for $streams would delete: units, observations and
-- the observation instants they span.
select count(*), count(distinct observed_at), min(observed_at), max(observed_at)
from meta.sync_window
where practice_ods = $practice_ods and stream in (select unnest($streams::varchar[]))
