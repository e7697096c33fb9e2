import { PgmError } from '../errors.js';
import { authUnsupported, scramFailure, startupError, unexpected } from './conn-errors.js';
import type { BackendMessage } from './messages.js';
import { MECHANISM, ScramClient, type ScramKeys } from './scram.js';
import * as wire from './serializer.js';

export interface AuthIo {
  user: string;
  /** The password, or SCRAM keys (then only SCRAM-SHA-256 can succeed). */
  password: string | ScramKeys;
  next(): Promise<BackendMessage>;
  write(buf: Buffer): void;
}

/**
 * Runs the startup exchange after the StartupMessage was sent, up to the first
 * ReadyForQuery. Supports SCRAM-SHA-256 (server signature verified),
 * cleartext password and trust; refuses MD5 and everything else. Returns the
 * backend process ID.
 */
export async function authenticate(endpoint: { host: string; port: number }, io: AuthIo): Promise<number> {
  let scram: ScramClient | null = null;
  let scramVerified = false;
  let authenticated = false;
  let processId = 0;
  for (;;) {
    const m = await io.next();
    switch (m.kind) {
      case 'authenticationOk':
        // A server that skips SASLFinal never proved it knows the password.
        if (scram && !scramVerified) throw unexpected(endpoint, 'AuthenticationOk before completing SCRAM');
        authenticated = true;
        break;
      case 'authenticationCleartextPassword':
        if (typeof io.password !== 'string') throw authUnsupported(endpoint, 'cleartext password (only SCRAM keys are known)');
        io.write(wire.password(io.password));
        break;
      case 'authenticationMD5Password':
        throw authUnsupported(endpoint, 'MD5 password');
      case 'authenticationOther':
        throw authUnsupported(endpoint, `type ${m.code}`);
      case 'authenticationSASL':
        if (!m.mechanisms.includes(MECHANISM)) throw authUnsupported(endpoint, `SASL (${m.mechanisms.join(', ')})`);
        scram = new ScramClient('', io.password);
        io.write(wire.saslInitialResponse(MECHANISM, scram.first()));
        break;
      case 'authenticationSASLContinue':
        if (!scram) throw unexpected(endpoint, 'SASLContinue before SASL');
        io.write(wire.saslResponse(wrapScram(endpoint, () => scram!.final(m.data))));
        break;
      case 'authenticationSASLFinal':
        if (!scram) throw unexpected(endpoint, 'SASLFinal before SASL');
        wrapScram(endpoint, () => scram!.verify(m.data));
        scramVerified = true;
        break;
      case 'backendKeyData':
        processId = m.processId;
        break;
      case 'negotiateProtocolVersion':
        // We ask for 3.0 with no protocol extensions; a server may still
        // report its newest minor version, which changes nothing for us.
        break;
      case 'errorResponse':
        throw startupError(endpoint, io.user, m.fields);
      case 'readyForQuery':
        if (!authenticated) throw unexpected(endpoint, 'ReadyForQuery before AuthenticationOk');
        return processId;
      default:
        throw unexpected(endpoint, `a ${m.kind} message during startup`);
    }
  }
}

function wrapScram<T>(endpoint: { host: string; port: number }, f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof PgmError) throw scramFailure(endpoint, err);
    throw err;
  }
}
