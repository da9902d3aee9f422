-- schema.sql — tables of the pipeline tests, created on both sides.
CREATE TABLE kinds (id int PRIMARY KEY, t text, n numeric, ts timestamptz, j jsonb, b bytea,
                    arr int[], f float8, nul text, iv interval);
CREATE TABLE toasty (id int PRIMARY KEY, big text, small int);
ALTER TABLE toasty ALTER big SET STORAGE EXTERNAL;
CREATE TABLE full_ident (a int, b text);
ALTER TABLE full_ident REPLICA IDENTITY FULL;
CREATE TABLE nokey (a int, b text);
CREATE TABLE pkchange (id int PRIMARY KEY, v text);
CREATE TABLE parted (id int, region text, v int, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE parted_eu PARTITION OF parted FOR VALUES IN ('eu');
CREATE TABLE parted_us PARTITION OF parted FOR VALUES IN ('us');
CREATE TABLE gen (id int PRIMARY KEY, a int, doubled int GENERATED ALWAYS AS (a * 2) STORED);
CREATE TABLE trunc1 (id serial PRIMARY KEY, v int);
CREATE TABLE trunc2 (id serial PRIMARY KEY, v int);
CREATE TABLE bulk (id int PRIMARY KEY, v text);
