-- The units of a batch being loaded (practice, filter, window, observation), with how many
-- slot rows each staged. Reads the loader's in-memory batch tables (warehouse/load.py).
with

units as (
    select distinct practice_ods, filter_key, window_start, window_end, observed_at
    from slotsync_loader.loader_landed
),

counts as (
    select practice_ods, filter_key, window_start, window_end, observed_at,
           count(*) as rows_loaded
    from slotsync_loader.loader_stg_slots
    group by all
)

select u.*, coalesce(c.rows_loaded, 0) as rows_loaded
from units as u
left join counts as c using (practice_ods, filter_key, window_start, window_end, observed_at)
