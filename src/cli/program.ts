import path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { z } from 'zod';
import { closeClusters, lockManager, openCluster } from '../cluster/context.js';
import { reloadCluster } from '../cluster/reload.js';
import { PGMAESTRO_VERSION } from '../version.js';
import { parseWait, withLocks } from '../cluster/lock.js';
import { down } from '../cluster/down.js';
import { ensureLab } from '../cluster/lab.js';
import { clusterPaths } from '../cluster/paths.js';
import { up } from '../cluster/provision.js';
import { clusterStatus } from '../cluster/status.js';
import { initConfig } from '../config/init.js';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { configSchema } from '../config/schema.js';
import { runDaemon } from '../daemon/main.js';
import { assertSystemd, installService, readService, systemctl, uninstallService } from '../daemon/service.js';
import { ensureSupervised } from '../daemon/supervise.js';
import { awaitEndpoints, checkEndpointPorts } from '../router/processes.js';
import { PgmError, errorMessage, exitCodeFor } from '../errors.js';
import { runAgent } from '../agent/agent.js';
import { ensureCerts } from '../agent/certs.js';
import { downMultiHost, upMultiHost } from '../agent/cluster-ops.js';
import { installUnit } from '../agent/install.js';
import { guardFiles, runGuard } from '../agent/guard.js';
import { destroyLab } from '../cluster/lab.js';
import { registerBackupCommands } from './backup.js';
import { registerHaCommands } from './ha.js';
import { registerLogicalCommands } from './logical.js';
import { preflightLogical, upLogical } from '../logical/up.js';
import { Repository } from '../backup/repository.js';
import { WAIT_FLAGS, WAIT_HELP, formatStatus } from './output.js';

/** Thin commands: parse flags, call a domain function, print. Errors are mapped to exit codes in one place, below. */
const program = new Command('pgmaestro')
  .version(PGMAESTRO_VERSION, '-V, --version', 'print the version')
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
    if (r.home) {
      say(`${path.dirname(r.file)} is out of reach of the OS user that runs PostgreSQL (it cannot enter ${r.home.blocked}): the cluster's data, secrets, logs and backups will live in ${r.home.dir} (home: in the configuration).`);
    }
    say(`start it with: pgmaestro up -c ${r.file}`);
  });

program
  .command('up')
  .option('-c, --config <file>', 'cluster configuration')
  .option(WAIT_FLAGS, WAIT_HELP)
  .addOption(new Option('--service', 'the PostgreSQL servers only: systemd runs the rest (pgmaestro service install)').hideHelp())
  .description('provision what is missing, start all, wait until healthy')
  .action(async (o: { config?: string; wait?: string | boolean; service?: boolean }) => {
    const cfg = loadConfig(resolveConfigPath(o.config));
    await withLocks(lockManager(cfg), ['cluster'], 'pgmaestro up', parseWait(o.wait), async () => {
      if (cfg.ha.isolation === 'netns') await ensureLab(cfg, clusterPaths(cfg).stateDir);
      const ctx = await openCluster(cfg);
      const queryStates = await preflightLogical(ctx);
      // the members are up and watched, then the query nodes and what logical replication declares
      if (cfg.dcs) {
        // multi-host: every host's agent runs its nodes and serves the endpoint there
        await upMultiHost(ctx, parseWait(o.wait), say, () => upLogical(ctx, queryStates, say));
        say('');
        say(formatStatus(await clusterStatus(ctx)));
        await ctx.store.close();
        return;
      }
      const service = readService(ctx);
      if (service && !o.service) assertSystemd(service);
      if (!service) await checkEndpointPorts(ctx);
      await up(ctx, say);
      if (o.service) return;
      if (service) {
        // systemd keeps the daemon and the endpoints (pgmaestro service install)
        say(systemctl(service, 'start'));
      } else {
        const d = await ensureSupervised(ctx);
        say(`daemon: ${d.started ? 'started' : 'running'} (pid ${d.daemon}, supervisor pid ${d.supervisor}, log ${ctx.paths.daemonLog})`);
      }
      // The supervisor (or systemd) starts the endpoints: wait for them.
      for (const line of await awaitEndpoints(ctx, 20_000)) say(line);
      await upLogical(ctx, queryStates, say);
      say('');
      say(formatStatus(await clusterStatus(ctx)));
      await ctx.store.close();
    });
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
  .option(WAIT_FLAGS, WAIT_HELP)
  .addOption(new Option('--service', 'as systemd stops the cluster: do not call systemctl').hideHelp())
  .description('stop everything, keep data')
  .action(async (o: { config?: string; wait?: string | boolean; service?: boolean }) => {
    const ctx = await openCluster(loadConfig(resolveConfigPath(o.config)));
    if (ctx.cfg.dcs) {
      // multi-host: the cluster lock is in etcd, which a lab's down stops last; this machine's lock guards the lab
      return withLocks(lockManager(ctx.cfg), ['cluster'], 'pgmaestro down', parseWait(o.wait), async () => {
        await downMultiHost(ctx, parseWait(o.wait), say);
        if (await destroyLab(ctx.paths.stateDir)) say('lab: network namespaces and bridge removed');
      });
    }
    const service = o.service ? null : readService(ctx);
    // systemd first, or it would restart what down stops
    if (service) say(systemctl(service, 'stop'));
    await withLocks(ctx.locks, ['cluster'], 'pgmaestro down', parseWait(o.wait), () => down(ctx, say));
  });

program
  .command('service')
  .argument('<action>', 'install or uninstall')
  .option('-c, --config <file>', 'cluster configuration')
  .option('--dir <dir>', 'where the unit files go', '/etc/systemd/system')
  .description('systemd units for this host: the daemon and each endpoint kept running by systemd, which holds the endpoints\' sockets')
  .action(async (action: string, o: { config?: string; dir: string }) => {
    const ctx = await openCluster(loadConfig(resolveConfigPath(o.config)));
    if (action === 'install') for (const line of installService(ctx, path.resolve(o.dir))) say(line);
    else if (action === 'uninstall') for (const line of uninstallService(ctx)) say(line);
    else throw new PgmError('usage', `pgmaestro service takes install or uninstall, not '${action}'.`, { hint: 'for example: pgmaestro service install -c pgmaestro.yaml' });
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
  .argument('[action]', "'install' writes a systemd unit instead of running the agent; 'guard' is the host's watchdog, which the agent starts itself")
  .requiredOption('--host <name>', 'the host (hosts[].name) this agent runs on')
  .option('-c, --config <file>', 'cluster configuration')
  .option('--unit-dir <dir>', 'where install writes the unit', '/etc/systemd/system')
  .option('--agent-pid <pid>', 'guard: the agent that started it', intArg('--agent-pid'))
  .description('run the agent of one host: node control, primary lease, controller, endpoint, health checks')
  .action(async (action: string | undefined, o: { host: string; config?: string; unitDir: string; agentPid?: number }) => {
    const cfg = loadConfig(resolveConfigPath(o.config));
    if (action === 'install') {
      say(installUnit(cfg, o.host, o.unitDir));
      return;
    }
    if (action === 'guard') {
      const paths = clusterPaths(cfg);
      await runGuard(guardFiles(paths.stateDir, paths.logsDir, o.host), o.agentPid ?? process.ppid);
      return;
    }
    if (action !== undefined) throw new PgmError('usage', `unknown agent action '${action}'.`, { hint: 'use `pgmaestro agent --host NAME` or `pgmaestro agent install --host NAME`.' });
    await runAgent(cfg, o.host);
  });

program
  .command('reload')
  .option('-c, --config <file>', 'cluster configuration')
  .option(WAIT_FLAGS, WAIT_HELP)
  .description("apply pgmaestro.yaml's settings to every node (checked by PostgreSQL first); say what waits for a restart")
  .action(async (o: { config?: string; wait?: string | boolean }) => {
    const ctx = await openCluster(loadConfig(resolveConfigPath(o.config)));
    await withLocks(ctx.locks, ['cluster'], 'pgmaestro reload', parseWait(o.wait), () => reloadCluster(ctx, say));
  });

registerBackupCommands(program);
registerHaCommands(program);
registerLogicalCommands(program);

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

/** The one place errors become output and exit statuses: one sentence, never a stack trace (unless PGMAESTRO_DEBUG is set). */
function fail(err: unknown): void {
  if (err instanceof CommanderError) {
    // --help, --version (0), or commander already printed its one line (2); end naturally so a closed pipe is still noticed
    process.exitCode = err.exitCode === 0 ? 0 : 2;
    return;
  }
  try {
    process.stderr.write(`pgmaestro: ${errorMessage(err)}\n`);
    if (process.env.PGMAESTRO_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  } catch {
    // stderr is gone too
  }
  process.exit(exitCodeFor(err));
}

// A reader that went away (`| head`) ends the command quietly, with the status a process killed by SIGPIPE has.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => (err.code === 'EPIPE' ? process.exit(141) : fail(err)));
}
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

try {
  await program.parseAsync(process.argv);
  await Repository.closeAll();
  await closeClusters();
} catch (err) {
  fail(err);
}
