import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClusterConfig } from '../config/types.js';
import { PgmError } from '../errors.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'pgmaestro.js');

/**
 * `pgmaestro agent install --host NAME`: a systemd unit that runs the agent
 * and restarts it when it dies (PostgreSQL is not a child of the agent: it
 * keeps running across agent restarts). Returns what it did.
 */
export function installUnit(cfg: ClusterConfig, host: string, unitDir: string): string {
  if (!cfg.hosts.some((h) => h.name === host)) {
    throw new PgmError('config.invalid', `there is no host '${host}' in ${cfg.file}.`, { hint: `use one of: ${cfg.hosts.map((h) => h.name).join(', ')}.` });
  }
  const name = `pgmaestro-agent-${cfg.cluster}.service`;
  const unit = `# Written by pgmaestro agent install.
[Unit]
Description=pgmaestro agent of host ${host} (cluster ${cfg.cluster})
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=${process.execPath} ${BIN} agent --host ${host} -c ${cfg.file}
Restart=always
RestartSec=1
# stop the agent only: PostgreSQL keeps running, and the next agent adopts it
KillMode=process
TimeoutStopSec=15

[Install]
WantedBy=multi-user.target
`;
  fs.mkdirSync(unitDir, { recursive: true });
  const file = path.join(unitDir, name);
  fs.writeFileSync(file, unit, { mode: 0o644 });
  return `wrote ${file}; enable it with: systemctl daemon-reload && systemctl enable --now ${name}`;
}
