-- workload.sql — the DML the pipeline tests replicate: every case the
-- decoder and apply must get right. Run on the primary after schema.sql.
INSERT INTO kinds VALUES
  (1, 'héllo wörld ✓ 日本', 123.456, '2026-01-02 03:04:05.678901+00', '{"a": [1, 2, {"b": null}]}', '\xdeadbeef', '{1,2,NULL}', 1.5e-300, NULL, '1 day 02:03:04'),
  (2, E'it''s a "quote" \\ backslash\nnewline\ttab', -0.0001, 'infinity', '[]', '', '{}', 'NaN', 'x', '-1 mon'),
  (3, '', 1e100, '1999-12-31 23:59:59.999999-08', '"s"', '\x00', '{{1,2},{3,4}}', -0, '', '0');
UPDATE kinds SET t = t || '!' WHERE id = 1;
DELETE FROM kinds WHERE id = 3;

INSERT INTO toasty SELECT 1, string_agg(md5(i::text), ''), 1 FROM generate_series(1, 4000) i;
INSERT INTO toasty SELECT 2, string_agg(md5((i * 7)::text), ''), 1 FROM generate_series(1, 4000) i;
UPDATE toasty SET small = 2 WHERE id = 1;               -- big is unchanged TOAST
UPDATE toasty SET big = 'short now', small = 3 WHERE id = 2;

INSERT INTO full_ident VALUES (1, 'a'), (1, 'a'), (2, NULL), (3, 'c');
UPDATE full_ident SET b = 'one' WHERE ctid = (SELECT ctid FROM full_ident WHERE a = 1 LIMIT 1);
DELETE FROM full_ident WHERE b IS NULL;
UPDATE full_ident SET b = NULL WHERE a = 3;

INSERT INTO nokey VALUES (1, 'x'), (1, 'x'), (2, NULL);

INSERT INTO pkchange VALUES (1, 'a'), (2, 'b');
UPDATE pkchange SET id = 10 WHERE id = 1;
UPDATE pkchange SET id = id + 100, v = v || '+';

INSERT INTO parted VALUES (1, 'eu', 1), (2, 'us', 2), (3, 'eu', 3);
UPDATE parted SET v = 10 WHERE id = 1;
UPDATE parted SET region = 'us' WHERE id = 3;            -- moves between partitions
DELETE FROM parted WHERE id = 2;

INSERT INTO gen (id, a) VALUES (1, 21), (2, 5);
UPDATE gen SET a = 22 WHERE id = 1;

INSERT INTO trunc1 (v) SELECT generate_series(1, 10);
INSERT INTO trunc2 (v) VALUES (1), (2);
TRUNCATE trunc1, trunc2 RESTART IDENTITY;
INSERT INTO trunc1 (v) VALUES (99);

SELECT pg_logical_emit_message(true, 'test', 'transactional');
SELECT pg_logical_emit_message(false, 'test', 'not transactional');

-- large transactions (streamed with logical_decoding_work_mem = 64kB)
INSERT INTO bulk SELECT g, md5(g::text) FROM generate_series(1, 20000) g;
BEGIN;
INSERT INTO bulk SELECT g, 'aborted' FROM generate_series(100001, 120000) g;
ROLLBACK;
BEGIN;
INSERT INTO bulk SELECT g, 'kept 1' FROM generate_series(200001, 205000) g;
SAVEPOINT s1;
INSERT INTO bulk SELECT g, 'rolled back' FROM generate_series(300001, 310000) g;
ROLLBACK TO SAVEPOINT s1;
INSERT INTO bulk SELECT g, 'kept 2' FROM generate_series(400001, 405000) g;
UPDATE bulk SET v = v || '*' WHERE id % 1000 = 0;
COMMIT;

-- prepared transactions (decoded at COMMIT PREPARED)
BEGIN;
INSERT INTO kinds (id, t) VALUES (50, 'prepared then committed');
PREPARE TRANSACTION 'pgferry_p1';
COMMIT PREPARED 'pgferry_p1';
BEGIN;
INSERT INTO kinds (id, t) VALUES (51, 'prepared then rolled back');
PREPARE TRANSACTION 'pgferry_p2';
ROLLBACK PREPARED 'pgferry_p2';
