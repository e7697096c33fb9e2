// Runs the whole suite with node's test runner: unit tests, then integration
// tests against real PostgreSQL servers (embedded 18 and Debian's 15).
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const dirs = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['test/unit', 'test/integration'];
const files = dirs.flatMap((d) =>
  d.endsWith('.ts') ? [d] : readdirSync(d).filter((f) => f.endsWith('.test.ts')).sort().map((f) => `${d}/${f}`),
);
const concurrency = process.env.PGM_TEST_CONCURRENCY ?? '3';
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
