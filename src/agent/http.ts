import https from 'node:https';
import type tls from 'node:tls';
import type { HostConfig } from '../config/types.js';
import { PgmError, type ErrorCode } from '../errors.js';
import { commonName, type TlsIdentity } from './certs.js';

/**
 * The agents' wire: HTTPS with mutual TLS, JSON bodies. Both sides present a
 * certificate of the cluster CA; a client accepts a server only when its
 * certificate names the host it meant to reach, and a server accepts any
 * host of the cluster. Replies are `{ result }` or `{ error: { code, message, hint } }`,
 * so a refusal on the far side arrives here as the same PgmError.
 */

export interface AgentReply {
  readonly status: number;
  readonly body: unknown;
}

/** Calls `host`'s agent; throws `agent.unreachable` (with the reason) when it cannot be reached in time. */
export function agentCall(id: TlsIdentity, host: HostConfig, method: 'GET' | 'POST', urlPath: string, body: unknown, timeoutMs: number): Promise<AgentReply> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = https.request(
      {
        host: host.agent.host,
        port: host.agent.port,
        method,
        path: urlPath,
        ca: id.ca,
        cert: id.cert,
        key: id.key,
        servername: host.name,
        checkServerIdentity: (_name: string, cert: tls.PeerCertificate) =>
          commonName(cert as unknown as { subject: Record<string, unknown> }) === host.name ? undefined : new Error(`the agent at ${host.agent.host}:${host.agent.port} presented a certificate for ${commonName(cert as unknown as { subject: Record<string, unknown> }) ?? '(none)'}, not ${host.name}`),
        headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        agent: false,
        timeout: timeoutMs,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => {
          clearTimeout(timer);
          let parsed: unknown = text;
          try {
            parsed = text === '' ? null : JSON.parse(text);
          } catch {
            // a health check answers plain text
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
        res.on('error', fail);
      },
    );
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    function fail(err: Error): void {
      clearTimeout(timer);
      reject(
        new PgmError('agent.unreachable', `the agent of host ${host.name} (${host.agent.host}:${host.agent.port}) cannot be reached: ${err.message.replace(/\.$/, '')}.`, {
          hint: `check that \`pgmaestro agent --host ${host.name}\` runs there and that this host reaches its address.`,
          cause: err,
        }),
      );
    }
    req.on('error', fail);
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.end(payload);
  });
}

/** A verb of `host`'s agent: its result, or the PgmError the agent raised. */
export async function agentVerb<T>(id: TlsIdentity, host: HostConfig, verb: string, body: Record<string, unknown>, timeoutMs: number): Promise<T> {
  const r = await agentCall(id, host, 'POST', `/v1/${verb}`, body, timeoutMs);
  const b = r.body as { result?: T; error?: { code: ErrorCode; message: string; hint?: string } } | null;
  if (b?.error) throw new PgmError(b.error.code, b.error.message, { hint: b.error.hint });
  if (r.status !== 200 || !b || !('result' in b)) {
    throw new PgmError('agent.refused', `the agent of host ${host.name} answered ${verb} with status ${r.status}.`, { hint: 'run the same version of pgmaestro on every host.' });
  }
  return b.result as T;
}

export function serverOptions(id: TlsIdentity): https.ServerOptions {
  return { ca: id.ca, cert: id.cert, key: id.key, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' };
}
