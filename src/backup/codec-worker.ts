import { parentPort } from 'node:worker_threads';
import { crc32c } from '@node-rs/crc32';
import { compressBlock, decompressFrame, type Codec } from './codec.js';

/**
 * A worker thread of the codec pool: compresses blocks and gives each raw
 * block's CRC-32C; decompresses lz4 / zstd frames for restores.
 * Messages and replies are described in codec-pool.ts.
 */
export type WorkerRequest =
  | { readonly op: 'compress'; readonly id: number; readonly codec: Codec; readonly data: Uint8Array }
  | { readonly op: 'decompress'; readonly id: number; readonly kind: 'lz4' | 'zstd'; readonly data: Uint8Array };

export type WorkerReply =
  | { readonly id: number; readonly frame: Uint8Array; readonly crc: number }
  | { readonly id: number; readonly error: string };

parentPort?.on('message', (m: WorkerRequest) => {
  void handle(m).then(
    (r) => parentPort!.postMessage(r, 'frame' in r ? [r.frame.buffer as ArrayBuffer] : []),
    (err: Error) => parentPort!.postMessage({ id: m.id, error: err.message }),
  );
});

async function handle(m: WorkerRequest): Promise<WorkerReply> {
  const data = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength);
  if (m.op === 'decompress') {
    const out = await decompressFrame(m.kind, data);
    const frame = new Uint8Array(out.length);
    frame.set(out);
    return { id: m.id, frame, crc: 0 };
  }
  const crc = crc32c(data);
  const out = await compressBlock(m.codec, data);
  // a transferable copy that owns its whole ArrayBuffer
  const frame = new Uint8Array(out.length);
  frame.set(out);
  return { id: m.id, frame, crc };
}
