import type { NodeObservation } from '../../src/ha/observations.js';
import { parseLsn } from '../../src/postgres/lsn.js';

/** Observation builders shared by the pure HA tests. */
export const primary = (over: Partial<NodeObservation> = {}): NodeObservation => ({
  name: 'node1', sqlOk: true, probeMs: 3, hostReachable: true, postmasterAlive: true, inRecovery: false,
  walLsn: parseLsn('0/3000060'), receiveLsn: null, replayLsn: null, upstreamStreaming: null, upstream: null,
  lastMsgAgeMs: null, timeline: 1, nofailover: false, priority: 100, fenced: false, ...over,
});

export const replica = (name: string, lsn: string, over: Partial<NodeObservation> = {}): NodeObservation => ({
  name, sqlOk: true, probeMs: 2, hostReachable: true, postmasterAlive: true, inRecovery: true,
  walLsn: null, receiveLsn: parseLsn(lsn), replayLsn: parseLsn(lsn), upstreamStreaming: true, upstream: 'node1',
  lastMsgAgeMs: 100, timeline: 1, nofailover: false, priority: 100, fenced: false, ...over,
});

export const silentSql = { sqlOk: false, probeMs: null, inRecovery: null, walLsn: null, receiveLsn: null, replayLsn: null, upstreamStreaming: null, lastMsgAgeMs: null } as const;
/** SIGKILLed postmaster: the host answers, the pid is gone. */
export const crashed = (n: NodeObservation): NodeObservation => ({ ...n, ...silentSql, hostReachable: true, postmasterAlive: false });
/** SIGSTOPped or hung: the host answers, the pid is alive, SQL does not answer. */
export const stopped = (n: NodeObservation): NodeObservation => ({ ...n, ...silentSql, hostReachable: true, postmasterAlive: true });
/** Host unreachable (partition, switch down). */
export const gone = (n: NodeObservation): NodeObservation => ({ ...n, ...silentSql, hostReachable: false, postmasterAlive: null });
/** The probe timed out but answered after `ms`. */
export const late = (n: NodeObservation, ms: number): NodeObservation => ({ ...n, sqlOk: false, probeMs: ms });
