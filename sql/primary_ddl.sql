-- primary_ddl.sql — DDL capture (replicate_ddl = on). Written in the next step.
SELECT 1;
