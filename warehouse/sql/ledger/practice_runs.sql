-- Every practice's outcome in one load ($load_id), by practice.
select practice_ods, status, responses, slot_rows, message, next_step
from meta.practice_run
where load_id = $load_id
order by practice_ods
