import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as pgq from 'libpg-query';
import { classifyText, hintOf, unparsable, type Classification } from '../../src/router/classify.js';

/**
 * Statement classification over the trees of the real PostgreSQL parser
 * (libpg-query, no server): is it a read, does it pin the session, is it
 * transaction control, a route setting, a hint.
 */
before(async () => {
  await pgq.loadModule();
});
const cls = (sql: string): Classification => classifyText(sql, (t) => pgq.parseSync(t));

type Expect = Partial<Classification>;
function check(sql: string, want: Expect): void {
  const got = cls(sql);
  for (const [k, v] of Object.entries(want)) assert.deepEqual(got[k as keyof Classification], v, `${sql}: ${k} (got ${JSON.stringify(got)})`);
}

test('classify: reads', () => {
  const reads: [string, string][] = [
    ['SELECT 1', 'SELECT'],
    ['select * from pgbench_accounts where aid = $1', 'SELECT'],
    ['SELECT a FROM t JOIN u USING (id) WHERE x IN (SELECT y FROM v) ORDER BY 1 LIMIT 5', 'SELECT'],
    ['WITH x AS (SELECT 1) SELECT * FROM x', 'SELECT'],
    ['WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r', 'SELECT'],
    ['SELECT 1 UNION SELECT 2', 'SELECT'],
    ['VALUES (1), (2)', 'SELECT'],
    ['TABLE t', 'SELECT'],
    ['SHOW search_path', 'SHOW'],
    ['SHOW ALL', 'SHOW'],
    ['EXPLAIN SELECT 1', 'EXPLAIN without ANALYZE'],
    ['EXPLAIN INSERT INTO t VALUES (1)', 'EXPLAIN without ANALYZE'],
    ['EXPLAIN (ANALYZE false) DELETE FROM t', 'EXPLAIN without ANALYZE'],
    ['EXPLAIN (ANALYZE off, COSTS on) DELETE FROM t', 'EXPLAIN without ANALYZE'],
    ['EXPLAIN (ANALYZE 0) DELETE FROM t', 'EXPLAIN without ANALYZE'],
    ['EXPLAIN ANALYZE SELECT 1', 'EXPLAIN ANALYZE of SELECT'],
    ['COPY t TO STDOUT', 'COPY TO'],
    ['COPY (SELECT * FROM t) TO STDOUT WITH (FORMAT csv)', 'COPY of SELECT'],
    ['DECLARE c CURSOR FOR SELECT 1', 'a cursor over SELECT'],
    ['UNLISTEN *', 'UNLISTEN'],
    ['SAVEPOINT a', 'savepoint'],
    ['RELEASE SAVEPOINT a', 'savepoint'],
    ['ROLLBACK TO SAVEPOINT a', 'savepoint'],
    ['SET LOCAL statement_timeout = 1000', 'SET LOCAL'],
    ['SELECT 1; SELECT 2', 'reads only'],
  ];
  for (const [sql, reason] of reads) check(sql, { write: false, reason, pin: null, tx: null, route: null });
});

test('classify: writes — DML, DDL, maintenance, and anything the router does not know', () => {
  const writes: [string, string][] = [
    ['INSERT INTO t VALUES (1)', 'Insert'],
    ['UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 1', 'Update'],
    ['DELETE FROM t', 'Delete'],
    ['MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE', 'Merge'],
    ['CREATE TABLE t (x int)', 'Create'],
    ['CREATE TABLE t2 AS SELECT 1', 'CreateTableAs'],
    ['CREATE VIEW v AS SELECT 1', 'View'],
    ['CREATE SEQUENCE s', 'CreateSeq'],
    ['CREATE INDEX ON t (x)', 'Index'],
    ['ALTER TABLE t ADD COLUMN y int', 'AlterTable'],
    ['DROP TABLE t', 'Drop'],
    ['TRUNCATE t', 'Truncate'],
    ['VACUUM t', 'Vacuum'],
    ['ANALYZE t', 'Vacuum'],
    ['LOCK TABLE t IN SHARE MODE', 'Lock'],
    ['NOTIFY ch', 'Notify'],
    ["DO $$BEGIN PERFORM 1; END$$", 'Do'],
    ['CALL p()', 'Call'],
    ['GRANT SELECT ON t TO public', 'Grant'],
    ['COPY t FROM STDIN', 'COPY FROM'],
    ['EXECUTE s(1)', 'Execute'],
    ['DEALLOCATE s', 'Deallocate'],
    ['CHECKPOINT', 'CheckPoint'],
    ['REFRESH MATERIALIZED VIEW m', 'RefreshMatView'],
    ['EXPLAIN ANALYZE INSERT INTO t VALUES (1)', 'EXPLAIN ANALYZE of Insert'],
    ['EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET x = 1', 'EXPLAIN ANALYZE of Update'],
    ['EXPLAIN (ANALYZE true) DELETE FROM t', 'EXPLAIN ANALYZE of Delete'],
    ['EXPLAIN (ANALYZE on) DELETE FROM t', 'EXPLAIN ANALYZE of Delete'],
    ['EXPLAIN (ANALYZE 1) DELETE FROM t', 'EXPLAIN ANALYZE of Delete'],
    ['COPY (SELECT * FROM t FOR UPDATE) TO STDOUT', 'COPY of SELECT … FOR UPDATE/SHARE'],
    ['SELECT 1; INSERT INTO t VALUES (1)', 'Insert'],
  ];
  for (const [sql, reason] of writes) check(sql, { write: true, reason });
});

test('classify: a SELECT that locks rows, creates a table, or modifies data in a CTE is a write', () => {
  for (const lock of ['FOR UPDATE', 'FOR NO KEY UPDATE', 'FOR SHARE', 'FOR KEY SHARE', 'FOR UPDATE SKIP LOCKED', 'FOR UPDATE OF t NOWAIT']) {
    check(`SELECT * FROM t ${lock}`, { write: true, reason: 'SELECT … FOR UPDATE/SHARE' });
  }
  check('SELECT * FROM (SELECT * FROM t FOR UPDATE) s', { write: true, reason: 'SELECT … FOR UPDATE/SHARE' });
  check('SELECT * FROM t WHERE x IN (SELECT x FROM u FOR SHARE)', { write: true, reason: 'SELECT … FOR UPDATE/SHARE' });
  check('SELECT 1 INTO newtable', { write: true, reason: 'SELECT INTO' });
  check('WITH d AS (DELETE FROM gone RETURNING 1) SELECT * FROM d', { write: true, reason: 'a data-modifying CTE (DELETE)' });
  check('WITH i AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM i', { write: true, reason: 'a data-modifying CTE (INSERT)' });
  check('WITH u AS (UPDATE t SET x = 1 RETURNING *) SELECT count(*) FROM u', { write: true, reason: 'a data-modifying CTE (UPDATE)' });
  check('WITH m AS (MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE RETURNING 1) SELECT * FROM m', { write: true, reason: 'a data-modifying CTE (MERGE)' });
  check('WITH a AS (SELECT 1), b AS (WITH c AS (DELETE FROM t RETURNING 1) SELECT * FROM c) SELECT * FROM a, b', { write: true, reason: 'a data-modifying CTE (DELETE)' });
  check('SELECT * FROM t UNION ALL (SELECT * FROM u FOR UPDATE)', { write: true });
});

test('classify: functions that write go to the primary whatever the catalog says; others are listed for the volatility check', () => {
  check("SELECT nextval('s')", { write: true, reason: 'calls nextval()', pin: null });
  check("SELECT setval('s', 10)", { write: true, reason: 'calls setval()' });
  check('SELECT txid_current()', { write: true, reason: 'calls txid_current()' });
  check('SELECT pg_current_xact_id()', { write: true });
  check("SELECT pg_notify('ch', 'x')", { write: true });
  check('SELECT lo_create(0)', { write: true });
  check('SELECT vol(), inet_server_port()', { write: false, functions: ['vol', 'inet_server_port'] });
  check('SELECT public.MyFunc(1)', { write: false, functions: ['myfunc'] });
  check('SELECT count(*), max(x) FROM t WHERE lower(y) = $1', { write: false, functions: ['count', 'max', 'lower'] });
  check('SELECT * FROM generate_series(1, 3)', { write: false, functions: ['generate_series'] });
  check('SELECT (SELECT f(x) FROM t) AS v', { write: false, functions: ['f'] });
  check('SELECT 1; SELECT g()', { write: false, functions: ['g'] });
  check('SELECT 1', { functions: [] });
});

test('classify: session state pins the session to its server for its life', () => {
  const pins: [string, string][] = [
    ['SET search_path = app', 'SET search_path'],
    ['SET SESSION statement_timeout = 0', 'SET statement_timeout'],
    ["SET TIME ZONE 'UTC'", 'SET timezone'],
    ['RESET ALL', 'SET ALL'],
    ['RESET search_path', 'SET search_path'],
    ['LISTEN ch', 'LISTEN'],
    ['DECLARE c CURSOR WITH HOLD FOR SELECT 1', 'a WITH HOLD cursor'],
    ['PREPARE s AS SELECT 1', 'a prepared statement (PREPARE)'],
    ["LOAD 'auto_explain'", 'a loaded library'],
    ['CREATE TEMP TABLE tt (x int)', 'a temporary table'],
    ['CREATE TEMPORARY TABLE tt AS SELECT 1', 'a temporary table'],
    ['CREATE TEMP VIEW tv AS SELECT 1', 'a temporary table'],
    ['CREATE TEMP SEQUENCE ts', 'a temporary table'],
    ['SELECT pg_advisory_lock(1)', 'pg_advisory_lock()'],
    ['SELECT pg_try_advisory_lock(1)', 'pg_try_advisory_lock()'],
    ['SELECT pg_advisory_lock_shared(1)', 'pg_advisory_lock_shared()'],
    ["SELECT set_config('search_path', 'x', false)", 'set_config()'],
    ['SELECT 1; SET search_path = x', 'SET search_path'],
  ];
  for (const [sql, pin] of pins) check(sql, { write: true, pin });
  check('CREATE TABLE tt (x int)', { pin: null });
  check('SET LOCAL search_path = x', { pin: null, write: false });
  check('SELECT pg_advisory_xact_lock(1)', { pin: null });
  check('DECLARE c CURSOR WITHOUT HOLD FOR SELECT 1', { pin: null, write: false });
});

test('classify: transaction control, when the text is exactly one such statement', () => {
  const tx: [string, Classification['tx'], boolean][] = [
    ['BEGIN', 'begin', true],
    ['begin transaction', 'begin', true],
    ['START TRANSACTION', 'begin', true],
    ['BEGIN ISOLATION LEVEL SERIALIZABLE', 'begin', true],
    ['BEGIN READ ONLY', 'begin_read_only', false],
    ['START TRANSACTION READ ONLY', 'begin_read_only', false],
    ['BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY', 'begin_read_only', false],
    ['BEGIN READ ONLY DEFERRABLE', 'begin_read_only', false],
    ['BEGIN READ WRITE', 'begin_read_write', true],
    ['COMMIT', 'end', false],
    ['END', 'end', false],
    ['COMMIT AND CHAIN', 'end', false],
    ['ROLLBACK', 'end', false],
    ['ABORT', 'end', false],
    ['SET TRANSACTION READ ONLY', 'set_read_only', false],
    ['SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY', 'set_read_only', false],
    ['SET TRANSACTION READ WRITE', null, false],
    ['SET TRANSACTION ISOLATION LEVEL SERIALIZABLE', null, false],
  ];
  for (const [sql, want, write] of tx) check(sql, { tx: want, write, pin: null });
  check("PREPARE TRANSACTION 'x'", { write: true, reason: 'two-phase commit', tx: null });
  check("COMMIT PREPARED 'x'", { write: true, reason: 'two-phase commit' });
  check("ROLLBACK PREPARED 'x'", { write: true, reason: 'two-phase commit' });
  // among several statements, transaction control makes the text a write and is not itself reported
  check('BEGIN; SELECT 1; COMMIT', { write: true, tx: null, reason: 'transaction control among several statements' });
  check('SELECT 1; COMMIT', { write: true, tx: null });
});

test('classify: SET pgmaestro.route, in every spelling the parser takes, and the one it does not', () => {
  check("SET pgmaestro.route = 'primary'", { route: 'primary', write: false, pin: null });
  check('SET pgmaestro.route TO replica', { route: 'replica', write: false });
  check("SET pgmaestro.route = 'AUTO'", { route: 'auto' });
  check('SET SESSION pgmaestro.route = auto', { route: 'auto' });
  check('RESET pgmaestro.route', { route: 'auto', reason: 'RESET pgmaestro.route' });
  check('SET pgmaestro.route TO DEFAULT', { route: 'auto' });
  // PRIMARY is a reserved word: PostgreSQL's grammar refuses it unquoted, the router takes it
  check('SET pgmaestro.route = primary', { route: 'primary', write: false });
  check('set pgmaestro.route to primary;', { route: 'primary' });
  check("SET pgmaestro.route = 'elsewhere'", { route: null, write: true });
  check('SET pgmaestro.other = 1', { route: null, write: true, pin: 'SET pgmaestro.other' });
});

test('classify: hints override, in a comment anywhere, in any case', () => {
  assert.equal(hintOf('SELECT 1 /* pgmaestro:primary */'), 'primary');
  assert.equal(hintOf('/*pgmaestro:REPLICA*/ SELECT 1'), 'replica');
  assert.equal(hintOf('/*  pgmaestro:replica  */INSERT INTO t VALUES (1)'), 'replica');
  assert.equal(hintOf("SELECT 'pgmaestro:primary'"), null, 'not in a comment');
  assert.equal(hintOf('SELECT 1 -- pgmaestro:primary'), null, 'only block comments');
  assert.equal(hintOf('SELECT 1'), null);
  check('SELECT 1 /* pgmaestro:primary */', { hint: 'primary', write: false });
  check('SELEC 1 /* pgmaestro:replica */', { hint: 'replica', write: true });
  check('SELECT 1; SELECT 2 /* pgmaestro:primary */', { hint: 'primary' });
});

test('classify: a text the parser rejects is a write (its error comes from the primary); an empty text is nothing', () => {
  check('SELEC 1', { write: true, reason: 'the parser rejects it', pin: null, tx: null, route: null });
  check("SELECT 'unterminated", { write: true, reason: 'the parser rejects it' });
  check('SELECT 1 +', { write: true, reason: 'the parser rejects it' });
  assert.deepEqual(unparsable('garbage'), { write: true, reason: 'the parser rejects it', pin: null, tx: null, functions: [], route: null, hint: null, copyIn: false });
  check('', { write: false, reason: 'empty', tx: null });
  check('   ', { write: false, reason: 'empty' });
  check(';', { write: false, reason: 'empty' });
  check('-- only a comment', { write: false, reason: 'empty' });
});

test('classify: COPY FROM STDIN is marked (nothing may be sent behind it), COPY TO is not', () => {
  check('COPY t FROM STDIN', { copyIn: true, write: true });
  check("COPY t (a, b) FROM STDIN WITH (FORMAT csv)", { copyIn: true });
  check('SELECT 1; COPY t FROM STDIN', { copyIn: true });
  check('COPY t TO STDOUT', { copyIn: undefined });
  check('SELECT 1; SELECT 2', { copyIn: false });
  check('COPY t FROM STDIN WITH garbage', { copyIn: true, reason: 'the parser rejects it' });
});

test('classify: a parser that throws anything (not only a syntax error) sends the text to the primary', () => {
  const c = classifyText('SELECT 1', () => {
    throw new RangeError('out of memory');
  });
  assert.equal(c.write, true);
  assert.equal(c.reason, 'the parser rejects it');
});
