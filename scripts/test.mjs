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
// Integration tests start pgmaestro's long-running processes (supervisor, daemon, endpoints) from the
// compiled dist/, the code that ships (see childCommand in src/daemon/spawn.ts): build it if src/ is newer.
if (files.some((f) => f.includes('integration'))) {
  const check = spawnSync(process.execPath, ['--import', 'tsx', '-e', "import('./src/daemon/spawn.ts').then((m) => process.exit(m.distIsFresh() ? 0 : 1))"], { stdio: 'inherit' });
  if (check.status !== 0) {
    console.log('pgmaestro tests: dist/ is older than src/; building it (npm run build)');
    const b = spawnSync('npm', ['run', 'build', '--silent'], { stdio: 'inherit' });
    if (b.status !== 0) process.exit(b.status ?? 1);
  }
}
const concurrency = process.env.PGM_TEST_CONCURRENCY ?? '3';
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
