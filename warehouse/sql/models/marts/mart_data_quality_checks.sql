-- Grain: one row per (practice, expectation): the result of every data-quality expectation
-- on the practice's latest validated batch of scheduled syncs (warehouse/quality.py). The
-- Data health page lists these; failures of critical expectations held the batch back.
--   suite             slots | schedules | locations | batches | appointments
--   expectation       stable name of the check (README, "Data quality")
--   severity          critical: a failure quarantines the batch; warning: reported only
--   passed            no row of the batch broke the expectation
--   rows_checked      rows of the batch the expectation looked at
--   unexpected_rows   rows that broke it
--   batch_outcome     passed | quarantined (the whole batch)
with

latest_batch as (
    select *
    from meta.quality_batch
    where stream = 'slots'
    qualify row_number() over (
        partition by practice_ods order by observed_at desc, validated_at desc, load_id desc
    ) = 1
)

select
    b.practice_ods,
    p.sub_icb_code,
    b.observed_at,
    r.suite,
    r.expectation,
    r.severity,
    r.success as passed,
    r.rows_checked,
    r.unexpected_count as unexpected_rows,
    b.outcome as batch_outcome,
    b.load_id
from latest_batch as b
join meta.quality_result as r using (load_id, practice_ods, stream)
left join core.dim_practice as p using (practice_ods)
order by b.practice_ods, r.suite, r.expectation
