-- Figure group: can the data be trusted, judged against now (the injectable clock), the rule
-- `slotsync status` applies: a practice or hub is up to date when its last successful nightly
-- (full-horizon) capture is at most $stale_after_s seconds before $now; stale otherwise
-- (never captured included); it has an open failure when its latest sync failed, whatever its
-- freshness (a practice that never synced and failed counts in both).
-- Not filtered by period: freshness is about now, not about the days shown.
with

registry as (
    select
        practice_ods,
        last_nightly_at,
        latest_status
    from mart_pipeline_freshness
    where $all_ods or list_contains($ods::varchar[], practice_ods)
)

select
    count(*) as registry_practices,
    count(*) filter (where last_nightly_at is not null
                     and epoch($now::timestamptz - last_nightly_at) <= $stale_after_s) as practices_fresh,
    count(*) filter (where last_nightly_at is null
                     or epoch($now::timestamptz - last_nightly_at) > $stale_after_s) as practices_stale,
    count(*) filter (where last_nightly_at is null) as practices_never_captured,
    count(*) filter (where latest_status = 'failed') as practices_failed,
    max(last_nightly_at) as newest_capture_at
from registry
