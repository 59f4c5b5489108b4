-- The staged rows of one staging table that belong to the batches being validated
-- (`quality_units`), with each row's stream and load (`batch_load_id`); a temp view, so the
-- check frames read staging directly and nothing is copied. The group's practice and
-- observation bounds (session variables) let DuckDB skip other row groups by their min/max.
-- `quality_only_practices` (a list, or null for all) narrows it further: the failing rows of a
-- check frame that is a view are looked for among the practices with failures only.
select u.stream, u.load_id as batch_load_id, s.*
from {{ staged }} as s
join quality_units as u
  on s.practice_ods = u.practice_ods and s.filter_key = u.filter_key
 and s.window_start = u.window_start and s.window_end = u.window_end
 and s.observed_at = u.observed_at
where s.observed_at between getvariable('quality_first_observed') and getvariable('quality_last_observed')
  and s.practice_ods between getvariable('quality_first_practice') and getvariable('quality_last_practice')
  and (getvariable('quality_only_practices') is null
       or list_contains(getvariable('quality_only_practices'), s.practice_ods))
