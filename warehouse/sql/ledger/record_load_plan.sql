-- What a load set out to fetch (flows/operations.py LoadPlan): a re-run or backfill reads it back.
insert or replace into meta.load_plan
    (load_id, mode, stream, plan_start, horizon_days, window_days, practices, rerun_of)
values ($load_id, $mode, $stream, $start, $horizon_days, $window_days, $practices, $rerun_of)
