-- Every quarantined batch of the group opens a quarantine with what failed and $next_step.
insert or replace into meta.quarantine by name
select load_id, practice_ods, stream, observed_at, failed_expectations, detail,
       $next_step as next_step, coalesce($now::timestamptz, now()) as quarantined_at,
       null as resolved_at, null as resolved_by_load_id, null as resolution
from quality_batch_rows
where outcome = 'quarantined'
