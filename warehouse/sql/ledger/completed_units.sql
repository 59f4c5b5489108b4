-- Units of $practices already complete for $stream at the observation instant $observed_at:
-- what a re-run skips.
select w.practice_ods, w.filter_key, w.window_start, w.window_end
from meta.sync_window as w
-- A quarantined batch is fetched again: the re-run is how it gets promoted.
anti join meta.quarantine as q
    on q.practice_ods = w.practice_ods and q.stream = w.stream and q.load_id = w.load_id
where w.stream = $stream and w.observed_at = $observed_at
  and w.practice_ods in (select unnest($practices::varchar[]))
