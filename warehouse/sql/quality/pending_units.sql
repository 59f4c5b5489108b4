-- Units waiting for validation: complete (in meta.sync_window), not folded, and of a batch
-- (practice, stream, load) that has no meta.quality_batch row yet. Usually the current load's;
-- also a load that died between loading and validating. Materialised as `quality_pending`;
-- `quality_units` holds the practices being validated now (warehouse/quality.py).
select w.practice_ods, w.stream, w.load_id, w.filter_key, w.window_start, w.window_end, w.observed_at,
       w.rows_loaded
from meta.sync_window as w
anti join meta.quality_batch as b
    on b.practice_ods = w.practice_ods and b.stream = w.stream and b.load_id = w.load_id
where w.folded_at is null
  and ($practices::varchar[] is null or w.practice_ods in (select unnest($practices::varchar[])))
