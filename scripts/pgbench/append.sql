-- pgbench equivalent of one redemption-shaped append (see domain/examples/bench_append.rs):
-- lock two stream heads, read their versions, insert a new head, move the two heads,
-- insert three events with their hashes. One statement per round trip, like the store.
\set a random(1, 1000)
\set p random(1, 1000)
BEGIN;
SELECT stream_id, version, last_hash FROM es.streams
 WHERE stream_id IN ('bench-account-' || :a, 'bench-product-' || :p) ORDER BY stream_id FOR UPDATE;
SELECT quote_literal('bench-redemption-' || gen_random_uuid()) AS rid \gset
INSERT INTO es.streams (stream_id, version, last_hash) VALUES (:rid, 1, sha256('r'::bytea));
UPDATE es.streams SET version = version + 1, last_hash = sha256(last_hash)
 WHERE stream_id = 'bench-account-' || :a RETURNING version AS av \gset
UPDATE es.streams SET version = version + 1, last_hash = sha256(last_hash)
 WHERE stream_id = 'bench-product-' || :p RETURNING version AS pv \gset
INSERT INTO es.events (stream_id, version, event_id, event_type, schema_version, data, metadata, recorded_at, hash)
SELECT s, v, gen_random_uuid(), 'BenchEvent', 1, '{"n": 1}', '{"actor": {"role": "bench"}}', now(), sha256(s::bytea)
  FROM (VALUES ('bench-account-' || :a, :av::int8), ('bench-product-' || :p, :pv::int8),
               (:rid, 1::int8)) AS x(s, v);
COMMIT;
