import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PG15_BIN, REPO } from '../helpers/paths.js';
import { processAlive, tempDir } from '../helpers/cluster.js';

/**
 * As root, from a fresh clone inside a 0700 directory (as in root's home):
 * the README's first command must leave a running cluster, and a bin_dir
 * the PostgreSQL OS user cannot reach must be refused with nothing created.
 */
const asRoot = process.getuid?.() === 0;
let closed: string; // the 0700 directory
let clone: string;
let home: string | null = null;

/** Runs a shell command in the clone with a clean npm environment (no variables of the outer `npm test`). */
function sh(command: string, cwd: string, timeoutMs = 600_000): Promise<{ code: number; out: string; err: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_|^INIT_CWD$|^PGMAESTRO_CONFIG$/i.test(k)));
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', command], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, out, err });
    });
  });
}

const cliIn = (cwd: string, args: string) => sh(`node bin/pgmaestro.js ${args}`, cwd);

before(async () => {
  if (!asRoot) return;
  closed = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-closed-'));
  fs.chmodSync(closed, 0o700);
  clone = path.join(closed, 'pgmaestro');
  execFileSync('git', ['clone', '-q', REPO, clone]);
});

after(async () => {
  if (!asRoot) return;
  const config = path.join(clone, 'demo', 'pgmaestro.yaml');
  if (fs.existsSync(config)) await cliIn(clone, `down -c ${config}`);
  if (home) {
    for (const node of ['node1', 'node2', 'node3']) {
      try {
        process.kill(Number(fs.readFileSync(path.join(home, 'data', node, 'postmaster.pid'), 'utf8').split('\n')[0]), 'SIGKILL');
      } catch {
        // not running
      }
    }
    fs.rmSync(home, { recursive: true, force: true });
  }
  fs.rmSync(closed, { recursive: true, force: true });
});

test('as root, the README first command in a fresh clone inside a 0700 directory leaves a running cluster and says how to connect', { skip: !asRoot && 'needs root' }, async () => {
  const r = await sh('npm ci --no-audit --no-fund && npm run demo', clone);
  assert.equal(r.code, 0, r.out + r.err);
  assert.match(r.out, /is out of reach of the OS user that runs PostgreSQL \(it cannot enter \/tmp\/pgm-closed-[^)]+\): the cluster's data, secrets, logs and backups will live in \/var\/lib\/pgmaestro\//);
  assert.doesNotMatch(r.out + r.err, /EACCES|Error:|    at /);
  home = /home: (\S+)/.exec(fs.readFileSync(path.join(clone, 'demo', 'pgmaestro.yaml'), 'utf8'))![1];
  assert.ok(home.startsWith('/var/lib/pgmaestro/'), home);

  // the printed connect line works as printed
  const m = /connect: PGPASSFILE=(\S+) psql "([^"]+)"/.exec(r.out);
  assert.ok(m, r.out);
  const one = execFileSync(path.join(PG15_BIN, 'psql'), ['-Atc', 'SELECT 1', m[2]], { env: { ...process.env, PGPASSFILE: m[1] } }).toString().trim();
  assert.equal(one, '1');

  // three nodes, run from a copy of the embedded PostgreSQL the OS user can reach
  const st = JSON.parse((await cliIn(clone, `status --json -c demo/pgmaestro.yaml`)).out) as { nodes: { role: string; pid: number | null }[] };
  assert.deepEqual(st.nodes.map((n) => n.role), ['primary', 'replica', 'replica']);
  for (const n of st.nodes) assert.match(fs.readlinkSync(`/proc/${n.pid}/exe`), /^\/var\/lib\/pgmaestro\/postgres\/[^/]+\/bin\/postgres$/);
  const copy = path.dirname(path.dirname(fs.readlinkSync(`/proc/${st.nodes[0].pid}/exe`)));
  const s = fs.statSync(path.join(copy, 'bin'));
  assert.equal(s.uid, 0, 'the private copy is root-owned');
  assert.equal(s.mode & 0o022, 0, 'and writable by nobody else');

  // down stops it all
  const d = await cliIn(clone, 'down -c demo/pgmaestro.yaml');
  assert.equal(d.code, 0, d.err);
  for (const n of st.nodes) assert.equal(processAlive(n.pid!), false, 'postmaster stopped');
});

test('as root, a bin_dir inside a 0700 directory is refused naming that directory, and nothing is created', { skip: !asRoot && 'needs root' }, async () => {
  const link = path.join(closed, 'pg15');
  fs.symlinkSync(PG15_BIN, link);
  const dir = tempDir('closedbin');
  try {
    const i = await cliIn(clone, `init ${dir} --replicas 1 --port-base 22000 --bin-dir ${link}`);
    assert.equal(i.code, 0, i.err);
    const r = await cliIn(clone, `up -c ${dir}/pgmaestro.yaml`);
    assert.equal(r.code, 2, r.out + r.err);
    const lines = r.err.trim().split('\n');
    assert.equal(lines.length, 1, r.err);
    assert.match(lines[0], new RegExp(`cannot reach ${link}/\\w+, because it cannot enter ${closed}\\. HINT: `));
    assert.deepEqual(fs.readdirSync(dir), ['pgmaestro.yaml']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
