-- Every unresolved quarantined batch, oldest observation first.
select practice_ods, stream, load_id, observed_at, failed_expectations, detail, next_step
from meta.quarantine
where resolved_at is null
order by observed_at, practice_ods, load_id
