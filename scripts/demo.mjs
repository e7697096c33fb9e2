// The README's first command: create a demo cluster (once) and bring it up.
// As root, PostgreSQL runs as an unprivileged user that must be able to reach
// the data; when this checkout sits somewhere it cannot (under /root, say),
// the demo lives in /var/lib/pgmaestro/demo instead.
import { existsSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

function othersCanReach(dir) {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    if ((statSync(d).mode & 0o001) === 0) return false;
    if (path.dirname(d) === d) return true;
  }
}
const dir = process.getuid?.() === 0 && !othersCanReach('.') ? '/var/lib/pgmaestro/demo' : 'demo';
const config = path.join(dir, 'pgmaestro.yaml');
const cli = (...args) => {
  const r = spawnSync(process.execPath, ['bin/pgmaestro.js', ...args], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
if (!existsSync(config)) cli('init', dir);
cli('up', '-c', config);
