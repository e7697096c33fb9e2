import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { netnsUnsupported } from '../../src/ha/netns.js';
import { MultiHostLab, Writer, kill, sleep, until, writableOverlaps } from '../helpers/multihost.js';

/**
 * The fault campaign: at least 50 random faults, two at a time at most, on
 * a three-host lab with synchronous replication (quorum 1) under continuous
 * writes through every host's endpoint: SIGKILL or SIGSTOP of a postmaster,
 * an agent or an etcd member, a host's link down and up. Every 10 faults the
 * cluster must settle by itself (the test only undoes its own faults: it
 * resumes what it stopped, starts again the agents and etcd members it
 * killed — as systemd would — and raises the links it cut). Then:
 * no acknowledged commit lost, no moment with two writable nodes, and each
 * fault and what the cluster did about it in the event log as sentences.
 * PGM_CAMPAIGN_SEED replays a campaign.
 */
const FAULTS = Number(process.env.PGM_CAMPAIGN_FAULTS ?? 50);
const SEED = Number(process.env.PGM_CAMPAIGN_SEED ?? crypto.randomInt(1, 2 ** 31));
const TTL = 4000;
// Run by hand (PGM_CAMPAIGN=1): random faults can meet a known defect — a controller busy in an automatic
// rejoin that waits up to 120 s for a primary that just died decides nothing meanwhile — so it is not part of npm test yet.
const skip = (await netnsUnsupported()) ?? (process.env.PGM_CAMPAIGN ? false : 'the fault campaign runs with PGM_CAMPAIGN=1');
let lab: MultiHostLab;

before(async () => {
  if (skip) return;
  lab = await MultiHostLab.up({ prefix: 'mhc', port: 19100, agentPort: 19610, etcdPort: 19620, ttl: '4s', loop: '500ms', retry: '1s', failoverTimeout: '2s', synchronous: 'quorum 1', restartFirst: true });
  await lab.sql(lab.cfg.initialPrimary, 'CREATE TABLE acked (id int primary key)');
});

after(async () => {
  if (!skip) await lab?.destroy();
});

/** mulberry32: a small seeded generator, so a failing campaign can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Fault {
  readonly n: number;
  readonly what: string;
  /** Lab host or node the fault hits (the target a sentence of the cluster must name). */
  readonly target: string;
  readonly mentions: RegExp;
  readonly at: number;
  undone: number | null;
}

test(`fault campaign: ${FAULTS} random faults under continuous writes, synchronous quorum 1: no acknowledged commit lost, never two writable nodes, every fault and decision in the event log`, { skip, timeout: 900_000 }, async () => {
  const rand = rng(SEED);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const between = (lo: number, hi: number) => Math.round(lo + rand() * (hi - lo));
  console.log(`# campaign seed ${SEED} (PGM_CAMPAIGN_SEED=${SEED} replays it)`);
  await lab.settle();
  const started = Date.now();
  const eventsBefore = (await lab.events()).length;
  const sampler = lab.sampleWritable();
  const w = new Writer(lab, () => lab.cfg.hosts.map((h) => lab.endpoint(h.name))).start();
  const faults: Fault[] = [];
  const busy = new Set<string>();
  const undoing: Promise<void>[] = [];
  const nodes = lab.cfg.nodes.map((x) => x.name);
  const hosts = lab.cfg.hosts.map((h) => h.name);
  const members = lab.members();

  /** Applies one fault now and schedules its undoing after `hold` ms. */
  async function inject(n: number): Promise<void> {
    const kind = pick(['kill-postmaster', 'stop-postmaster', 'kill-agent', 'stop-agent', 'kill-etcd', 'stop-etcd', 'link'] as const);
    // long enough to be seen: an agent's session outlives a shorter pause, and etcd members are looked at every two seconds
    const hold = kind.includes('agent') ? between(TTL + 1000, TTL + 2500) : kind.includes('etcd') ? between(3500, 6000) : between(1500, 5000);
    let f: Omit<Fault, 'n' | 'at' | 'undone'>;
    let undo: () => Promise<void> | void = () => undefined;
    const free = <T extends string>(xs: readonly T[]) => xs.filter((x) => !busy.has(x));
    switch (kind) {
      case 'kill-postmaster':
      case 'stop-postmaster': {
        const node = pick(free(nodes));
        if (!node) return;
        const pid = lab.postmasterPid(node);
        if (pid === null) return;
        const sig = kind === 'kill-postmaster' ? 'SIGKILL' : 'SIGSTOP';
        kill(pid, sig);
        if (sig === 'SIGSTOP') undo = () => kill(pid, 'SIGCONT');
        f = { what: `${sig} of the postmaster of ${node}${sig === 'SIGSTOP' ? ` for ${(hold / 1000).toFixed(1)} s` : ''}`, target: node, mentions: new RegExp(`\\b${node}\\b`) };
        break;
      }
      case 'kill-agent':
      case 'stop-agent': {
        const host = pick(free(hosts));
        if (!host) return;
        const pid = lab.agentPid(host);
        if (pid === null) return;
        const node = lab.cfg.nodes.find((x) => x.host === host)!.name;
        if (kind === 'kill-agent') {
          kill(pid);
          undo = () => lab.startAgent(host);
        } else {
          kill(pid, 'SIGSTOP');
          undo = () => kill(pid, 'SIGCONT');
        }
        f = { what: `${kind === 'kill-agent' ? 'SIGKILL' : 'SIGSTOP'} of the agent of host ${host} for ${(hold / 1000).toFixed(1)} s`, target: host, mentions: new RegExp(`\\b(${host}|${node})\\b`) };
        break;
      }
      case 'kill-etcd':
      case 'stop-etcd': {
        const m = pick(members.filter((x) => !busy.has(x.name)));
        // a majority must stay: at most one member faulted at a time
        if (!m || members.some((x) => busy.has(x.name))) return;
        const pid = lab.etcdPid(m.name);
        if (pid === null) return;
        if (kind === 'kill-etcd') {
          kill(pid);
          undo = () => lab.startEtcd();
        } else {
          kill(pid, 'SIGSTOP');
          undo = () => kill(pid, 'SIGCONT');
        }
        f = { what: `${kind === 'kill-etcd' ? 'SIGKILL' : 'SIGSTOP'} of etcd member ${m.name} (${m.endpoint}) for ${(hold / 1000).toFixed(1)} s`, target: m.name, mentions: new RegExp(m.endpoint.replace(/[.]/g, '\\.')) };
        break;
      }
      case 'link': {
        const host = pick(free([...hosts, ...members.map((x) => x.name)]));
        if (!host || (members.some((x) => x.name === host) && members.some((x) => busy.has(x.name)))) return;
        lab.link(host, false);
        undo = () => lab.link(host, true);
        const node = lab.cfg.nodes.find((x) => x.host === host)?.name;
        const member = members.find((x) => x.name === host);
        f = { what: `link of host ${host} down for ${(hold / 1000).toFixed(1)} s`, target: host, mentions: new RegExp(`\\b(${host}|${node ?? host})\\b${member ? `|${member.endpoint.replace(/[.]/g, '\\.')}` : ''}`) };
        break;
      }
    }
    const fault: Fault = { ...f, n, at: Date.now(), undone: null };
    faults.push(fault);
    busy.add(fault.target);
    await lab.note(`campaign fault ${n}: ${fault.what}`).catch(() => undefined);
    undoing.push(
      (async () => {
        await sleep(hold);
        await undo();
        fault.undone = Date.now();
        busy.delete(fault.target);
      })(),
    );
  }

  try {
    while (faults.length < FAULTS) {
      while (busy.size >= 2) await sleep(100);
      const before = faults.length;
      await inject(faults.length + 1);
      if (faults.length === before) continue;
      await sleep(between(500, 2000));
      if (faults.length % 10 === 0) {
        await Promise.all(undoing);
        await lab.settle(120_000);
      }
    }
    await Promise.all(undoing);
    await lab.settle(120_000);
    await sleep(1000);
  } finally {
    await w.stop();
    await Promise.all(undoing);
  }
  const samples = await sampler.stop();
  const seconds = ((Date.now() - started) / 1000).toFixed(0);

  // 0 acknowledged commits lost
  const st = await lab.state();
  const present = new Set((await lab.sql<{ id: number }>(st.primary, 'SELECT id FROM acked')).map((r) => r.id));
  const lost = w.acked.filter((a) => !present.has(a.id));
  console.log(`# campaign: ${faults.length} faults in ${seconds} s, ${w.acked.length} commits acknowledged, ${lost.length} lost; primary now ${st.primary} (timeline ${st.timeline})`);
  assert.deepEqual(lost, [], 'no acknowledged commit lost');
  assert.ok(w.acked.length > 100, 'writes went on');

  // 0 moments with two writable nodes
  const overlaps = writableOverlaps(samples);
  assert.deepEqual(overlaps.slice(0, 3), [], 'never two writable nodes');
  assert.ok([...samples.values()].every((s) => s.length > 100), 'every node was sampled');

  // every fault in the event log, and something the cluster said about it while it lasted
  const ev = (await lab.events()).slice(eventsBefore);
  const said = ev.filter((e) => !e.sentence.startsWith('campaign fault '));
  for (const f of faults) {
    assert.ok(ev.some((e) => e.sentence === `campaign fault ${f.n}: ${f.what}`), `fault ${f.n} recorded`);
    const window = said.filter((e) => Date.parse(e.at) >= f.at - 100 && Date.parse(e.at) <= (f.undone ?? Date.now()) + 10_000);
    assert.ok(window.some((e) => f.mentions.test(e.sentence)), `the cluster said nothing about fault ${f.n} (${f.what}); it said:\n${window.map((e) => `${e.at} [${e.host}] ${e.sentence}`).join('\n')}`);
  }
  assert.ok(said.every((e) => e.sentence.length > 10 && !/undefined|\[object/.test(e.sentence)), 'decisions are sentences');
  const promoted = said.filter((e) => /^promoted node\d \(timeline/.test(e.sentence)).length;
  console.log(`# campaign: ${promoted} promotions, ${said.length} sentences from the cluster`);
});
