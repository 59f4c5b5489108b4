-- Record the list sizes of a load's registry (`registry_rows`) as in force from the load's UK
-- day, where they differ from the size in force that day (core.practice_list_size). A second
-- load on the same day replaces that day's row; a load dated before a practice's later rows
-- (a backfill) adds its row between them and leaves the later ones in force from their days.
insert or replace into core.practice_list_size
select r.practice_ods, $day, r.list_size, r.nhs111_daily_quota, r.load_id
from registry_rows as r
where r.kind = 'practice'
  and r.list_size is distinct from (
      select h.list_size
      from core.practice_list_size as h
      where h.practice_ods = r.practice_ods and h.valid_from <= $day
      order by h.valid_from desc
      limit 1
  )
