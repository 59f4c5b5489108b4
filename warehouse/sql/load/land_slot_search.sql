-- Land one landing file (one line per slot-search response: {"meta": {...}, "bundle": {...}})
-- into raw.gpc_slot_search, keeping the bundle text exactly as received.
insert into raw.gpc_slot_search
select
    meta.load_id,
    meta.practice_ods,
    meta.interaction,
    meta.filter_role,
    meta.filter_key,
    meta.window_start::timestamptz,
    meta.window_end::timestamptz,
    meta.observed_at::timestamptz,
    meta.fetched_at::timestamptz,
    meta.http_status,
    meta.trace_id,
    meta.body_bytes,
    bundle
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
