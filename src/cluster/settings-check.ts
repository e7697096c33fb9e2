import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ClusterConfig, NodeConfig } from '../config/types.js';
import { PgmError } from '../errors.js';
import { run } from '../postgres/exec.js';
import { chownTo } from '../postgres/osuser.js';
import { firstCause } from '../postgres/tool-failure.js';
import type { ClusterContext } from './context.js';
import { SETTINGS_FILES, type RenderedFiles } from './configure.js';

/**
 * Before any node's files change, PostgreSQL itself reads each node's
 * candidate configuration: the rendered files (and the node's own
 * postgresql.auto.conf) are put in a scratch directory and `postgres -C`
 * runs on it as the OS user. A value it refuses stops the whole change with
 * one sentence naming the setting, its value, the node and where the value
 * came from; nothing on any node has been written yet.
 */
export async function checkSettings(ctx: ClusterContext, candidates: readonly { node: NodeConfig; files: RenderedFiles }[]): Promise<void> {
  for (const { node, files } of candidates) {
    const complaint = await postgresReads(ctx, node, files);
    if (complaint !== null) throw refusal(ctx.cfg, ctx.bins.version, node, complaint);
  }
}

/** What PostgreSQL says of the candidate files for `node`, or null when it accepts them. */
async function postgresReads(ctx: ClusterContext, node: NodeConfig, files: RenderedFiles): Promise<string | null> {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'pgmaestro-conf-'));
  try {
    fs.writeFileSync(path.join(scratch, 'PG_VERSION'), `${ctx.bins.major}\n`);
    for (const name of SETTINGS_FILES) if (files[name] !== null && files[name] !== undefined) fs.writeFileSync(path.join(scratch, name), files[name]!);
    const auto = path.join(node.dataDir, 'postgresql.auto.conf');
    if (fs.existsSync(auto)) fs.copyFileSync(auto, path.join(scratch, 'postgresql.auto.conf'));
    for (const f of fs.readdirSync(scratch)) chownTo(path.join(scratch, f), ctx.user);
    fs.chmodSync(scratch, 0o700);
    chownTo(scratch, ctx.user);
    const r = await run(ctx.bins.tool('postgres')!, ['-D', scratch, '-C', 'port'], { user: ctx.user, timeoutMs: 30_000 });
    if (r.code === 0) return null;
    return firstCause(r.stderr + r.stdout).replaceAll(scratch, node.dataDir);
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

/** Where a setting of `node` comes from, as a DBA would look for it. */
export function settingSource(cfg: ClusterConfig, node: NodeConfig, name: string): string {
  if (node.overrideKeys.includes(name)) return `${node.overrideFile} (settings.${name})`;
  const i = cfg.nodes.findIndex((n) => n.name === node.name);
  if (name in node.settings) return `${cfg.file} (nodes[${i}].settings.${name})`;
  if (name in cfg.settings) return `${cfg.file} (postgres.settings.${name})`;
  return `${path.join(node.dataDir, 'postgresql.auto.conf')} (ALTER SYSTEM) or pgmaestro's baseline`;
}

function refusal(cfg: ClusterConfig, version: string, node: NodeConfig, complaint: string): PgmError {
  const m = /parameter "([^"]+)"(?::\s*"([^"]*)")?/.exec(complaint);
  const name = m?.[1] ?? null;
  const value = name === null ? undefined : (node.settings[name] ?? cfg.settings[name] ?? m?.[2]);
  const where = name === null ? complaint.match(/file "([^"]+)"/)?.[1] ?? 'its configuration' : settingSource(cfg, node, name);
  const what = name === null ? 'its configuration' : `${name} = ${JSON.stringify(value === undefined ? '?' : String(value))} (from ${where})`;
  return new PgmError('config.invalid', `PostgreSQL ${version} refuses ${what} for node ${node.name}: ${complaint}.`, {
    hint: `fix it in ${where.replace(/ \(.*$/, '')} and run the command again; no node's configuration was changed.`,
    data: { node: node.name, setting: name, source: where },
  });
}
