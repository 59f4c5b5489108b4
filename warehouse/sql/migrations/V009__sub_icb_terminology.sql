-- CCGs were abolished on 1 July 2022: their codes (10K, 10V...) now identify sub-ICB
-- locations inside integrated care boards (ICBs), which sit in NHS regions. The registry
-- carries sub_icb_code, icb_code and region_code; the practice dimension says the same, so
-- marts and dashboards can filter by any of them. An upgraded warehouse keeps its codes (the
-- old ccg_code values are the sub-ICB location codes); ICB and region fill in on the next load.
alter table core.dim_practice rename column ccg_code to sub_icb_code;
alter table core.dim_practice add column icb_code varchar;
alter table core.dim_practice add column region_code varchar;
