import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { firstCause, toolFailure } from '../../src/postgres/tool-failure.js';

test('the first error line is the cause, not the last line', () => {
  const pgRestore = [
    'pg_restore: error: could not execute query: ERROR:  relation "o" already exists',
    'Command was: CREATE TABLE public.o (',
    '    id integer NOT NULL',
    ');',
    'pg_restore: warning: errors ignored on restore: 1',
  ].join('\n');
  assert.equal(firstCause(pgRestore), 'pg_restore: error: could not execute query: ERROR: relation "o" already exists');
  assert.equal(firstCause('psql:/tmp/x/dump.sql:25: ERROR:  relation "o" already exists\n'), 'psql:/tmp/x/dump.sql:25: ERROR: relation "o" already exists');
  assert.equal(firstCause('initdb: error: directory "/d" exists but is not empty\ninitdb: hint: If you want to create a new database system, either remove or empty the directory "/d" or run initdb with an argument other than "/d".'), 'initdb: error: directory "/d" exists but is not empty');
  assert.equal(firstCause('pg_rewind: fatal: could not open file "/x/global/pg_control" for reading: No such file or directory'), 'pg_rewind: fatal: could not open file "/x/global/pg_control" for reading: No such file or directory');
  assert.equal(firstCause('no severity here\nlast words\n\n'), 'last words');
  assert.equal(firstCause(''), 'no output');
});

test('a server log keeps the setting that was refused in front of the FATAL line', () => {
  const log = [
    '2026-12-01 10:00:00.000 UTC [123] LOG:  invalid value for parameter "shared_buffers": "lots"',
    '2026-12-01 10:00:00.000 UTC [123] FATAL:  configuration file "/d/postgresql.auto.conf" contains errors',
  ].join('\n');
  assert.equal(firstCause(log), 'LOG: invalid value for parameter "shared_buffers": "lots" / FATAL: configuration file "/d/postgresql.auto.conf" contains errors');
});

test('the sentence drops the tool prefix and says where the full output is', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-tf-'));
  try {
    const e = toolFailure('backup.failed', 'pg_restore', '', 'pg_restore: error: could not execute query: ERROR:  relation "o" already exists\n);\n', { keepDir: dir, hint: 'fix it.' });
    assert.match(e.message, /^pg_restore failed: error: could not execute query: ERROR: relation "o" already exists \(full output in .*pg_restore-.*\.log\)\.$/);
    const kept = fs.readdirSync(dir);
    assert.equal(kept.length, 1);
    assert.equal(fs.statSync(path.join(dir, kept[0])).mode & 0o777, 0o600);
    const p = toolFailure('backup.failed', 'psql', '', 'psql:/tmp/x/dump.sql:25: ERROR:  relation "o" already exists', { hint: 'fix it.' });
    assert.equal(p.message, 'psql failed: ERROR: relation "o" already exists.');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
