-- The rows of one check frame that GX is given to judge: those some expectation finds
-- unexpected (the frame's rules or-ed, in practices with failures only), keeping for each
-- expectation at most $sample_rows of its unexpected rows per batch. They are what Data Docs
-- and the quarantine detail show; the counts come from int_check_counts.sql.
select *
from {{ frame }}
where {{ unexpected }}
qualify {{ sampled }}
