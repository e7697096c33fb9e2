// The README's first command: create ./demo (once) and bring the cluster up.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const cli = (...args) => {
  const r = spawnSync(process.execPath, ['bin/pgmaestro.js', ...args], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
if (!existsSync('demo/pgmaestro.yaml')) cli('init', 'demo');
cli('up', '-c', 'demo/pgmaestro.yaml');
