import { test } from 'node:test';
import assert from 'node:assert/strict';
import { shapeOf } from '../../src/router/shape.js';

test('shape: numbers and strings become ?, the rest is kept', () => {
  const cases: [string, string][] = [
    ['SELECT abalance FROM pgbench_accounts WHERE aid = 4711', 'SELECT abalance FROM pgbench_accounts WHERE aid = ?'],
    ["SELECT * FROM t WHERE name = 'bob' AND n > 2.5", 'SELECT * FROM t WHERE name = ? AND n > ?'],
    ["SELECT 'it''s'", 'SELECT ?'],
    ["SELECT E'a\\'b', 'c'", 'SELECT ?, ?'],
    ["SELECT e'\\\\'", 'SELECT ?'],
    ["SELECT B'1010', X'FF', N'nat', U&'d\\0061t'", 'SELECT ?, ?, ?, ?'],
    ['SELECT $$dollar$$, $tag$with $$ inside$tag$', 'SELECT ?, ?'],
    ['SELECT 1e10, .5, 3., 1_000_000, 0x1F, 0o17, 0b101, 6.02E+23', 'SELECT ?, ?, ?, ?, ?, ?, ?, ?'],
    ['SELECT -1', 'SELECT -?'],
    ['SELECT a1, t2.c3 FROM t2', 'SELECT a1, t2.c3 FROM t2'],
    ['SELECT $1, $2 FROM t WHERE x = $10', 'SELECT $1, $2 FROM t WHERE x = $10'],
    ['SELECT "col 1", "it""s 2" FROM "T9"', 'SELECT "col 1", "it""s 2" FROM "T9"'],
    ["SELECT \"a'b\" FROM t WHERE x = 'y'", "SELECT \"a'b\" FROM t WHERE x = ?"],
    ['SELECT 1 -- comment 2\n, 3', 'SELECT ? -- comment 2\n, ?'],
    ['SELECT /* a 1 /* nested 2 */ 3 */ 4', 'SELECT /* a 1 /* nested 2 */ 3 */ ?'],
    ["SELECT '/* not a comment */'", 'SELECT ?'],
    ["SELECT x::text FROM t WHERE y = 'a'::text", 'SELECT x::text FROM t WHERE y = ?::text'],
    ['SELECT ábc1 FROM t', 'SELECT ábc1 FROM t'],
    ['', ''],
  ];
  for (const [sql, want] of cases) assert.equal(shapeOf(sql), want, sql);
});

test('shape: statements differing only in literals share a shape; different statements do not', () => {
  assert.equal(shapeOf("UPDATE t SET x = 1 WHERE id = 'a'"), shapeOf("UPDATE t SET x = 99 WHERE id = 'zz'"));
  assert.notEqual(shapeOf('SELECT * FROM a WHERE x = 1'), shapeOf('SELECT * FROM b WHERE x = 1'));
  assert.notEqual(shapeOf('SELECT f(1)'), shapeOf('SELECT g(1)'));
  assert.notEqual(shapeOf('SELECT 1 FOR UPDATE'), shapeOf('SELECT 1'));
});

test('shape: comments are kept, so hints stay in the cache key', () => {
  assert.equal(shapeOf('SELECT 1 /* hint */'), 'SELECT ? /* hint */');
  assert.notEqual(shapeOf('SELECT 1 /* a */'), shapeOf('SELECT 1 /* b */'));
});

test('shape: an unterminated literal, identifier or comment gives no shape (the exact text is used)', () => {
  for (const sql of ["SELECT 'open", 'SELECT "open', 'SELECT /* open', 'SELECT /* a /* b */', 'SELECT $x$ open', "SELECT E'\\'"]) assert.equal(shapeOf(sql), null, sql);
});

test('shape: a text about pgmaestro itself gives no shape (its values matter)', () => {
  assert.equal(shapeOf("SET pgmaestro.route = 'primary'"), null);
  assert.equal(shapeOf('SELECT 1 /* pgmaestro:primary */'), null);
  assert.equal(shapeOf('select 1 /* PGMAESTRO:replica */'), null);
});

test('shape: a dollar sign inside an identifier or after a digit is not a quote', () => {
  assert.equal(shapeOf('SELECT a$b FROM t WHERE c$1 = 2'), 'SELECT a$b FROM t WHERE c$1 = ?');
});

test('shape: an option list whose values decide the classification gives no shape', () => {
  assert.equal(shapeOf('EXPLAIN (ANALYZE 0) DELETE FROM t'), null);
  assert.equal(shapeOf(' explain(analyze 1) DELETE FROM t'), null);
  assert.equal(shapeOf('EXPLAIN SELECT 1'), 'EXPLAIN SELECT ?');
});
