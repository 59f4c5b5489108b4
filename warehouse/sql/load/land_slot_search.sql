-- The rows of one landing file (one line per slot-search response:
-- {"meta": {...}, "bundle": {...}}) in the shape of raw.gpc_slot_search, bundle text as
-- received. Parameter: $path. The loader puts them in a temporary table, checks them and
-- inserts them into raw.gpc_slot_search in the practice's transaction; staging is typed
-- from the same temporary table, so raw is never read back while loading.
select
    meta.load_id as load_id,
    meta.practice_ods as practice_ods,
    meta.interaction as interaction,
    meta.filter_role as filter_role,
    meta.filter_key as filter_key,
    meta.window_start::timestamptz as window_start,
    meta.window_end::timestamptz as window_end,
    meta.observed_at::timestamptz as observed_at,
    meta.fetched_at::timestamptz as fetched_at,
    meta.http_status as http_status,
    meta.trace_id as trace_id,
    meta.body_bytes as body_bytes,
    bundle as body
from read_json(
    $path,
    format = 'newline_delimited',
    records = true,
    maximum_object_size = 268435456,
    columns = {
        'meta': 'STRUCT(load_id VARCHAR, practice_ods VARCHAR, interaction VARCHAR, filter_role VARCHAR, filter_key VARCHAR, window_start VARCHAR, window_end VARCHAR, observed_at VARCHAR, fetched_at VARCHAR, http_status INTEGER, trace_id VARCHAR, body_bytes BIGINT)',
        'bundle': 'JSON'
    }
)
