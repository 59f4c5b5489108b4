-- Forget a practice's window state for $streams (raw and staging rows stay, for forensics);
-- DuckDB returns the number of rows deleted.
delete from meta.sync_window
where practice_ods = $practice_ods and stream in (select unnest($streams::varchar[]))
