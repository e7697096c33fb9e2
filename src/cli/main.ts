#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { z } from 'zod';
import { openCluster } from '../cluster/context.js';
import { down } from '../cluster/down.js';
import { ensureLab } from '../cluster/lab.js';
import { clusterPaths } from '../cluster/paths.js';
import { up } from '../cluster/provision.js';
import { clusterStatus } from '../cluster/status.js';
import { initConfig } from '../config/init.js';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { configSchema } from '../config/schema.js';
import { runDaemon } from '../daemon/main.js';
import { ensureDaemon } from '../daemon/spawn.js';
import { PgmError, errorMessage, exitCodeFor } from '../errors.js';
import path from 'node:path';
import { runAgent } from '../agent/agent.js';
import { ensureCerts } from '../agent/certs.js';
import { downMultiHost, upMultiHost } from '../agent/cluster-ops.js';
import { installUnit } from '../agent/install.js';
import { destroyLab } from '../cluster/lab.js';
import { registerBackupCommands } from './backup.js';
import { registerHaCommands } from './ha.js';
import { formatStatus } from './output.js';

/** Thin commands: parse flags, call a domain function, print. Errors are mapped to exit codes in one place, below. */
const program = new Command('pgmaestro')
  .description('PostgreSQL cluster manager: one config, streaming replicas, failover behind a stable endpoint, backups and point-in-time restore')
  .showHelpAfterError(false)
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

const say = (line: string) => process.stdout.write(line + '\n');
const intArg = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new PgmError('usage', `${name} must be a whole number, not '${v}'.`, { hint: `for example ${name} 2.` });
  return n;
};

program
  .command('init')
  .argument('<dir>', 'directory for the new cluster')
  .option('--replicas <n>', 'number of replicas', intArg('--replicas'), 2)
  .option('--port-base <p>', 'port of the first node (default 5432, or the next free block)', intArg('--port-base'))
  .option('--bin-dir <dir>', "PostgreSQL bin directory, or 'embedded'")
  .option('--dcs <kind>', "'etcd': a multi-host lab, every node on its own host with its agent, and three etcd members")
  .option('--agent-port <p>', 'with --dcs: the agents\' port (default 8008)', intArg('--agent-port'))
  .option('--etcd-port <p>', 'with --dcs: the etcd members\' client port (peer port + 1; default 2379)', intArg('--etcd-port'))
  .description('write DIR/pgmaestro.yaml, a commented example that works as is')
  .action(async (dir: string, o: { replicas: number; portBase?: number; binDir?: string; dcs?: string; agentPort?: number; etcdPort?: number }) => {
    const r = await initConfig(dir, { replicas: o.replicas, portBase: o.portBase, binDir: o.binDir, dcs: o.dcs, agentPort: o.agentPort, etcdPort: o.etcdPort });
    say(`wrote ${r.file} (${o.replicas + 1} nodes on ports ${r.portBase}-${r.portBase + o.replicas})`);
    say(`start it with: pgmaestro up -c ${r.file}`);
  });

program
  .command('up')
  .option('-c, --config <file>', 'cluster configuration')
  .description('provision what is missing, start all, wait until healthy')
  .action(async (o: { config?: string }) => {
    const cfg = loadConfig(resolveConfigPath(o.config));
    if (cfg.ha.isolation === 'netns') await ensureLab(cfg, clusterPaths(cfg).stateDir);
    const ctx = await openCluster(cfg);
    if (cfg.dcs) {
      await upMultiHost(ctx, say);
    } else {
      await up(ctx, say);
      const d = await ensureDaemon(ctx);
      say(`daemon: ${d.started ? 'started' : 'running'} (pid ${d.pid}, log ${ctx.paths.daemonLog})`);
    }
    say('');
    say(formatStatus(await clusterStatus(ctx)));
    await ctx.store.close();
  });

program
  .command('status')
  .option('-c, --config <file>', 'cluster configuration')
  .option('--json', 'machine-readable output')
  .description('nodes, roles, timeline, LSNs, lag')
  .action(async (o: { config?: string; json?: boolean }) => {
    const ctx = await openCluster(loadConfig(resolveConfigPath(o.config)));
    const st = await clusterStatus(ctx);
    say(o.json ? JSON.stringify(st, null, 2) : formatStatus(st));
    await ctx.store.close();
  });

program
  .command('down')
  .option('-c, --config <file>', 'cluster configuration')
  .description('stop everything, keep data')
  .action(async (o: { config?: string }) => {
    const ctx = await openCluster(loadConfig(resolveConfigPath(o.config)));
    if (ctx.cfg.dcs) {
      await downMultiHost(ctx, say);
      if (await destroyLab(ctx.paths.stateDir)) say('lab: network namespaces and bridge removed');
    } else {
      await down(ctx, say);
    }
  });

program
  .command('certs')
  .option('-c, --config <file>', 'cluster configuration')
  .description('create the cluster CA and one certificate per host in secrets/ (mode 0600), for mutual TLS between agents')
  .action(async (o: { config?: string }) => {
    const cfg = loadConfig(resolveConfigPath(o.config));
    const made = await ensureCerts(cfg);
    for (const m of made) say(`created ${m}`);
    if (made.length === 0) say('every host has its certificate already; nothing changed');
    say(`copy ${path.join(cfg.dir, 'secrets')} (ca.crt, and each host's <host>.crt and <host>.key) to the hosts`);
  });

program
  .command('agent')
  .argument('[action]', "'install' writes a systemd unit instead of running the agent")
  .requiredOption('--host <name>', 'the host (hosts[].name) this agent runs on')
  .option('-c, --config <file>', 'cluster configuration')
  .option('--unit-dir <dir>', 'where install writes the unit', '/etc/systemd/system')
  .description('run the agent of one host: node control, primary lease, controller, endpoint, health checks')
  .action(async (action: string | undefined, o: { host: string; config?: string; unitDir: string }) => {
    const cfg = loadConfig(resolveConfigPath(o.config));
    if (action === 'install') {
      say(installUnit(cfg, o.host, o.unitDir));
      return;
    }
    if (action !== undefined) throw new PgmError('usage', `unknown agent action '${action}'.`, { hint: 'use `pgmaestro agent --host NAME` or `pgmaestro agent install --host NAME`.' });
    await runAgent(cfg, o.host);
  });

registerBackupCommands(program);
registerHaCommands(program);

program
  .command('schema')
  .description('print the JSON Schema of pgmaestro.yaml')
  .action(() => {
    say(JSON.stringify(z.toJSONSchema(configSchema, { io: 'input' }), null, 2));
  });

program
  .command('daemon', { hidden: true })
  .option('-c, --config <file>', 'cluster configuration')
  .action(async (o: { config?: string }) => {
    const ctx = await openCluster(loadConfig(resolveConfigPath(o.config)));
    await runDaemon(ctx);
  });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    if (err.exitCode === 0) process.exit(0); // --help, --version
    process.exit(2); // commander already printed its one line
  }
  process.stderr.write(`pgmaestro: ${errorMessage(err)}\n`);
  if (process.env.PGMAESTRO_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  process.exit(exitCodeFor(err));
}
