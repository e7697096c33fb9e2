// Runs the whole suite with node's test runner: unit tests, then integration
// tests against real PostgreSQL servers (embedded 18 and Debian's 15).
// On a fresh machine it first installs, as root, what the integration tests
// use: Debian's PostgreSQL 15 (server and client tools), arping, iproute2, chromium,
// etcd (server and client, for the multi-host tests) and openssl (agent certificates).
import { existsSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const missing = [];
if (!existsSync('/usr/lib/postgresql/15/bin/postgres') || !existsSync('/usr/lib/postgresql/15/bin/psql')) missing.push('postgresql-15', 'postgresql-client-15');
const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
if (!has('arping')) missing.push('arping');
if (!has('ip')) missing.push('iproute2');
if (!existsSync('/usr/bin/chromium')) missing.push('chromium'); // the console's end-to-end tests (headless, driven by playwright-core)
if (!has('etcd') || !has('etcdctl')) missing.push('etcd-server', 'etcd-client');
if (!has('openssl')) missing.push('openssl');
if (missing.length > 0) {
  if (process.getuid?.() !== 0) {
    console.error(`pgmaestro tests: missing Debian packages ${missing.join(', ')}. HINT: sudo apt-get install ${missing.join(' ')}`);
    process.exit(1);
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  spawnSync('apt-get', ['update'], { stdio: 'inherit', env });
  const r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { stdio: 'inherit', env });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

const dirs = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['test/unit', 'test/integration'];
const files = dirs.flatMap((d) =>
  d.endsWith('.ts') ? [d] : readdirSync(d).filter((f) => f.endsWith('.test.ts')).sort().map((f) => `${d}/${f}`),
);
const concurrency = process.env.PGM_TEST_CONCURRENCY ?? '3';
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
