import crypto from 'node:crypto';

/**
 * A SCRAM-SHA-256 verifier as PostgreSQL stores it in pg_authid.
 * Sending the verifier (not the password) in CREATE/ALTER ROLE means the
 * secret never crosses the wire nor reaches a server log.
 */
export function scramVerifier(password: string, iterations = 4096, salt = crypto.randomBytes(16)): string {
  const salted = crypto.pbkdf2Sync(password.normalize('NFKC'), salt, iterations, 32, 'sha256');
  const clientKey = crypto.createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = crypto.createHash('sha256').update(clientKey).digest();
  const serverKey = crypto.createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/** A random secret without characters that need quoting in a libpq passfile. */
export function generateSecret(bytes = 24): string {
  return crypto.randomBytes(bytes).toString('base64url');
}
