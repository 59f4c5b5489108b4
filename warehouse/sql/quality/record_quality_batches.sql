-- One group's batch verdicts (registered as `quality_batch_rows`); the readable detail goes
-- to meta.quarantine only.
insert or replace into meta.quality_batch by name
select * exclude (detail), coalesce($now::timestamptz, now()) as validated_at
from quality_batch_rows
