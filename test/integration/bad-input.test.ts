import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { cli, tempDir, TestCluster, type CliResult } from '../helpers/cluster.js';

/**
 * Every kind of bad input gets one clear sentence with a hint on stderr,
 * a non-zero exit, and leaves everything as it was.
 */
const made: TestCluster[] = [];
after(async () => {
  for (const c of made) await c.destroy();
});

async function cluster(prefix: string, portBase: number, replicas = 1): Promise<TestCluster> {
  const c = await TestCluster.init(prefix, { portBase, replicas });
  made.push(c);
  return c;
}

function assertRefused(r: CliResult, pattern: RegExp): void {
  assert.notEqual(r.code, 0, 'exit status is non-zero');
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got: ${r.stderr}`);
  assert.match(lines[0], pattern);
  assert.match(lines[0], /HINT: /);
}

function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const st = fs.lstatSync(p);
      out.push(`${path.relative(dir, p)} ${st.size} ${st.mtimeMs}`);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.sort();
}

test('malformed YAML: one sentence naming file and line, exit 2, nothing created', async () => {
  const c = await cluster('bad-yaml', 26300);
  fs.writeFileSync(c.file, fs.readFileSync(c.file, 'utf8').replace('port: 26301', 'port: [26301'));
  const before = snapshot(c.dir);
  const r = await c.run('up');
  assertRefused(r, /pgmaestro\.yaml line \d+, column \d+: malformed YAML/);
  assert.equal(r.code, 2);
  assert.deepEqual(snapshot(c.dir), before);
});

test('an unknown key: named with its path and the allowed keys', async () => {
  const c = await cluster('bad-key', 26310);
  fs.writeFileSync(c.file, fs.readFileSync(c.file, 'utf8').replace('    data_dir: data/node2', '    data_dir: data/node2\n    dta_dir: x'));
  const before = snapshot(c.dir);
  const r = await c.run('up');
  assertRefused(r, /nodes\[1\]\.dta_dir.*unknown key 'dta_dir'.*allowed keys here are: name, port, data_dir/);
  assert.deepEqual(snapshot(c.dir), before);
});

test('a wrong type: names the path, the expected and the given type', async () => {
  const c = await cluster('bad-type', 26320);
  fs.writeFileSync(c.file, fs.readFileSync(c.file, 'utf8').replace('port: 26321', 'port: fast'));
  const r = await c.run('status');
  assertRefused(r, /nodes\[1\]\.port \(line \d+\): expected number, got string "fast"/);
});

test('two nodes on one port: refused before anything starts', async () => {
  const c = await cluster('bad-dup-port', 26330);
  fs.writeFileSync(c.file, fs.readFileSync(c.file, 'utf8').replace('port: 26331', 'port: 26330'));
  const before = snapshot(c.dir);
  const r = await c.run('up');
  assertRefused(r, /nodes node1 and node2 both use port 26330/);
  assert.deepEqual(snapshot(c.dir), before);
});

test('a port already in use by another program: refused, names the node and the port, nothing initialised', async () => {
  const c = await cluster('bad-port-busy', 26340);
  const squatter = net.createServer().listen(26341, '127.0.0.1');
  await new Promise((r) => squatter.once('listening', r));
  try {
    const r = await c.run('up');
    assertRefused(r, /port 26341 on 127\.0\.0\.1, configured for node node2, is already in use/);
    assert.equal(fs.existsSync(path.join(c.dir, 'data', 'node1')), false, 'the primary was not initialised');
  } finally {
    squatter.close();
  }
});

test('a data directory that belongs to another cluster: refused and untouched', async () => {
  const c = await cluster('bad-foreign', 26350);
  const foreign = path.join(c.dir, 'data', 'node2');
  fs.mkdirSync(foreign, { recursive: true });
  fs.writeFileSync(path.join(foreign, 'PG_VERSION'), '18\n');
  fs.writeFileSync(path.join(foreign, 'pgmaestro.json'), JSON.stringify({ cluster: 'payroll', node: 'node2', system_identifier: '1' }));
  const before = snapshot(path.join(c.dir, 'data'));
  const r = await c.run('up');
  assertRefused(r, /data directory .*node2 of node node2 belongs to node node2 of cluster payroll; pgmaestro will not touch it/);
  assert.deepEqual(snapshot(path.join(c.dir, 'data')), before);
});

test('a data directory holding a PostgreSQL cluster pgmaestro did not create: refused', async () => {
  const c = await cluster('bad-alien', 26360);
  const alien = path.join(c.dir, 'data', 'node1');
  fs.mkdirSync(alien, { recursive: true });
  fs.writeFileSync(path.join(alien, 'PG_VERSION'), '15\n');
  const r = await c.run('up');
  assertRefused(r, /holds a PostgreSQL cluster that pgmaestro did not create/);
  assert.deepEqual(fs.readdirSync(alien), ['PG_VERSION']);
});

test('a non-empty directory without PostgreSQL data: refused', async () => {
  const c = await cluster('bad-notempty', 26370);
  const dir = path.join(c.dir, 'data', 'node2');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'thesis.tex'), 'precious');
  const r = await c.run('up');
  assertRefused(r, /is not empty and holds no PostgreSQL data/);
  assert.equal(fs.readFileSync(path.join(dir, 'thesis.tex'), 'utf8'), 'precious');
});

test('a missing bin_dir: refused with what to set', async () => {
  const c = await cluster('bad-bindir', 26380);
  fs.writeFileSync(c.file, fs.readFileSync(c.file, 'utf8').replace('bin_dir: embedded', 'bin_dir: /opt/nowhere/bin'));
  const r = await c.run('up');
  assertRefused(r, /no executable postgres in \/opt\/nowhere\/bin \(postgres\.bin_dir\)/);
  assert.equal(fs.existsSync(path.join(c.dir, 'data')), false);
});

test('an unsupported major version: refused naming the version and the supported ones', async () => {
  const c = await cluster('bad-major', 26390);
  const bin = path.join(c.dir, 'pg14', 'bin');
  fs.mkdirSync(bin, { recursive: true });
  for (const tool of ['postgres', 'pg_ctl', 'initdb']) {
    fs.writeFileSync(path.join(bin, tool), '#!/bin/sh\necho "postgres (PostgreSQL) 14.12"\n', { mode: 0o755 });
  }
  fs.writeFileSync(c.file, fs.readFileSync(c.file, 'utf8').replace('bin_dir: embedded', `bin_dir: ${bin}`));
  const r = await c.run('up');
  assertRefused(r, /PostgreSQL 14\.12 in .* is not supported; pgmaestro supports majors 15, 16, 17, 18/);
  assert.equal(fs.existsSync(path.join(c.dir, 'data')), false);
});

test('init refuses to overwrite an existing configuration', async () => {
  const c = await cluster('bad-init', 26395);
  const before = fs.readFileSync(c.file, 'utf8');
  const r = await cli(['init', c.dir]);
  assertRefused(r, /already exists; init never overwrites/);
  assert.equal(fs.readFileSync(c.file, 'utf8'), before);
});

test('a data directory the PostgreSQL OS user cannot reach: refused naming the blocking directory', { skip: process.getuid?.() !== 0 && 'needs root' }, async () => {
  const c = await cluster('bad-reach', 26397);
  const locked = tempDir('locked');
  fs.chmodSync(locked, 0o700);
  try {
    fs.writeFileSync(c.file, fs.readFileSync(c.file, 'utf8').replace('data_dir: data/node2', `data_dir: ${locked}/node2`));
    const r = await c.run('up');
    assertRefused(r, new RegExp(`cannot reach the data directory of node2 .* because it cannot enter ${locked}`));
  } finally {
    fs.rmSync(locked, { recursive: true, force: true });
  }
});
