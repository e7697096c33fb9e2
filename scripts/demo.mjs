// The README's first command: create a demo cluster in ./demo (once) and bring it up.
// As root, PostgreSQL runs as an unprivileged user; when this checkout sits where
// that user cannot go (root's 0700 home, say), `init` keeps the configuration in
// ./demo and points its `home` at /var/lib/pgmaestro, and `up` runs a private copy
// of the embedded PostgreSQL from there.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const dir = 'demo';
const config = path.join(dir, 'pgmaestro.yaml');
const cli = (...args) => {
  const r = spawnSync(process.execPath, ['bin/pgmaestro.js', ...args], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
if (!existsSync(config)) cli('init', dir);
cli('up', '-c', config);
