-- One group's expectation results (registered as `quality_result_rows`, warehouse/quality.py),
-- stamped $now (the replayed clock) or the wall clock.
insert or replace into meta.quality_result by name
select *, coalesce($now::timestamptz, now()) as validated_at from quality_result_rows
