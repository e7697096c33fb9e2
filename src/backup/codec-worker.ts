import crypto from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { crc32c } from '@node-rs/crc32';
import { compressBlock, type Codec } from './codec.js';

/**
 * A worker thread of the codec pool: compresses blocks, and keeps the
 * running SHA-256 and CRC-32C of files whose blocks it is sent in order.
 * Messages and replies are described in codec-pool.ts.
 */
export type WorkerRequest =
  | { readonly op: 'compress'; readonly id: number; readonly codec: Codec; readonly data: Uint8Array }
  | { readonly op: 'hash'; readonly id: number; readonly fid: number; readonly data: Uint8Array | null; readonly final: boolean };

export type WorkerReply =
  | { readonly id: number; readonly frame: Uint8Array; readonly crc: number }
  | { readonly id: number; readonly sha256: string | null; readonly crc: number }
  | { readonly id: number; readonly error: string };

const hashes = new Map<number, { sha: crypto.Hash; crc: number }>();

parentPort?.on('message', (m: WorkerRequest) => {
  void handle(m).then(
    (r) => parentPort!.postMessage(r, 'frame' in r ? [r.frame.buffer as ArrayBuffer] : []),
    (err: Error) => parentPort!.postMessage({ id: m.id, error: err.message }),
  );
});

async function handle(m: WorkerRequest): Promise<WorkerReply> {
  const data = m.data === null ? null : Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength);
  if (m.op === 'compress') {
    const crc = crc32c(data!);
    const out = await compressBlock(m.codec, data!);
    // a transferable copy that owns its whole ArrayBuffer
    const frame = new Uint8Array(out.length);
    frame.set(out);
    return { id: m.id, frame, crc };
  }
  let h = hashes.get(m.fid);
  if (!h) hashes.set(m.fid, (h = { sha: crypto.createHash('sha256'), crc: 0 }));
  if (data) {
    h.sha.update(data);
    h.crc = crc32c(data, h.crc);
  }
  if (!m.final) return { id: m.id, sha256: null, crc: h.crc };
  hashes.delete(m.fid);
  return { id: m.id, sha256: h.sha.digest('hex'), crc: h.crc };
}
