-- Per batch of one check frame (materialised for the group being validated): the rows checked
-- and, per expectation, the rows it finds unexpected: one count_if(<rule>) column per
-- expectation of the frame, named after the check and compiled from the catalogue
-- (warehouse/quality_suites.py: unexpected_sql), so the counts follow GX's own rules.
select practice_ods, stream, load_id, count(*) as rows_checked{{ counts }}
from {{ frame }}
group by all
