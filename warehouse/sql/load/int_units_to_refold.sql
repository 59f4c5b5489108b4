-- Practices of the batch whose units already have a meta.sync_window row in $stream, and
-- whether one of those rows is an earlier observation a crash left unfolded.
select u.practice_ods, bool_or(w.folded_at is null and w.observed_at <> u.observed_at)
from slotsync_loader.loader_units as u
join meta.sync_window as w
  on w.practice_ods = u.practice_ods and w.stream = $stream and w.filter_key = u.filter_key
 and w.window_start = u.window_start and w.window_end = u.window_end
group by all
