import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { loadConfig } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';
import { PgmError } from '../../src/errors.js';
import { REPO } from '../helpers/paths.js';

const made: string[] = [];
after(() => {
  for (const d of made) fs.rmSync(d, { recursive: true, force: true });
});

function withConfig(text: string, extra: Record<string, string> = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-cfg-'));
  made.push(dir);
  fs.writeFileSync(path.join(dir, 'pgmaestro.yaml'), text);
  for (const [name, body] of Object.entries(extra)) fs.writeFileSync(path.join(dir, name), body);
  return path.join(dir, 'pgmaestro.yaml');
}

const base = `cluster: demo
postgres:
  settings:
    shared_buffers: 128MB
nodes:
  - name: node1
    port: 6001
    data_dir: data/node1
  - name: node2
    port: 6002
    data_dir: data/node2
    settings:
      work_mem: 64MB
`;

function expectError(text: string, code: string, pattern: RegExp, extra: Record<string, string> = {}): PgmError {
  const file = withConfig(text, extra);
  try {
    loadConfig(file);
  } catch (err) {
    assert.ok(err instanceof PgmError, `expected a PgmError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.match(err.render(), pattern);
    assert.ok(err.render().includes(file), 'the message names the file');
    assert.ok(err.hint, 'the error has a hint');
    return err;
  }
  assert.fail('loadConfig accepted a bad file');
}

test('a valid file loads with defaults, absolute paths and merged overrides', () => {
  const file = withConfig(base, { 'pgmaestro.node2.yaml': 'settings:\n  work_mem: 128MB\n  maintenance_work_mem: 256MB\ntags:\n  nofailover: true\n' });
  const cfg = loadConfig(file);
  assert.equal(cfg.cluster, 'demo');
  assert.equal(cfg.initialPrimary, 'node1');
  assert.equal(cfg.binDir, 'embedded');
  assert.equal(cfg.nodes[0].dataDir, path.join(path.dirname(file), 'data/node1'));
  assert.equal(cfg.nodes[0].service, '127.0.0.1');
  assert.equal(cfg.nodes[0].priority, 100);
  assert.deepEqual(cfg.nodes[1].settings, { work_mem: '128MB', maintenance_work_mem: '256MB' });
  assert.equal(cfg.nodes[1].nofailover, true);
  assert.equal(cfg.nodes[0].nofailover, false);
});

test('malformed YAML names the file and the line', () => {
  expectError('cluster: demo\nnodes:\n  - name: node1\n    port: [6001\n', 'config.syntax', /line \d+.*malformed YAML/);
});

test('an unknown key names its path and the allowed keys', () => {
  const err = expectError(base.replace('    port: 6002', '    prot: 6002\n    port: 6002'), 'config.invalid', /nodes\[1\]\.prot.*unknown key 'prot'/);
  assert.match(err.hint!, /allowed keys here are: name, port, data_dir/);
});

test('an unknown top-level key is refused', () => {
  expectError(base + 'replicas: 3\n', 'config.invalid', /replicas.*unknown key/);
});

test('a wrong type names the path, what was expected and what was given', () => {
  expectError(base.replace('port: 6001', 'port: "six"'), 'config.invalid', /nodes\[0\]\.port \(line 7\): expected number, got string "six"/);
});

test('a missing required key is named', () => {
  expectError(base.replace('cluster: demo\n', ''), 'config.invalid', /cluster: required key is missing/);
});

test('two nodes on one port are refused', () => {
  expectError(base.replace('port: 6002', 'port: 6001'), 'config.invalid', /nodes\[1\]\.port: nodes node1 and node2 both use port 6001/);
});

test('two nodes sharing a data directory are refused', () => {
  expectError(base.replace('data_dir: data/node2', 'data_dir: data/node1'), 'config.invalid', /share the data directory/);
});

test('duplicate node names and an unknown primary are refused', () => {
  expectError(base.replace('name: node2', 'name: node1'), 'config.invalid', /node name 'node1' is already used/);
  expectError('primary: node9\n' + base, 'config.invalid', /primary: 'node9' is not a node/);
});

test('an unknown key in a node override file is refused, naming that file', () => {
  const file = withConfig(base, { 'pgmaestro.node1.yaml': 'setings:\n  work_mem: 1MB\n' });
  assert.throws(() => loadConfig(file), (err: unknown) => err instanceof PgmError && /pgmaestro\.node1\.yaml: setings.*unknown key/.test(err.message));
});

test('a missing file says how to create one', () => {
  assert.throws(() => loadConfig('/nonexistent/pgmaestro.yaml'), (err: unknown) => err instanceof PgmError && err.code === 'config.not_found' && /pgmaestro init/.test(err.render()));
});

test('the shipped JSON Schema matches the zod schema', () => {
  const shipped = JSON.parse(fs.readFileSync(path.join(REPO, 'schema', 'pgmaestro.schema.json'), 'utf8'));
  assert.deepEqual(shipped, JSON.parse(JSON.stringify(z.toJSONSchema(configSchema, { io: 'input' }))));
});
