import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { ReplicationConnection } from '../../src/protocol/connection.js';
import { encodeXLogData } from '../../src/protocol/copy-messages.js';

/**
 * Connection behaviour against a scripted server: the script gets each
 * client message (the startup packet first, as code '') and a `send`.
 */
type Script = (code: string, body: Buffer, socket: net.Socket) => void;

function backend(code: string, body: Buffer | string = Buffer.alloc(0)): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body, 'latin1') : body;
  const head = Buffer.alloc(5);
  head.write(code, 'latin1');
  head.writeInt32BE(b.length + 4, 1);
  return Buffer.concat([head, b]);
}
const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const authOk = backend('R', int32(0));
const ready = backend('Z', 'I');

async function withServer(script: Script, f: (port: number) => Promise<void>): Promise<void> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    let buf = Buffer.alloc(0);
    let started = false;
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        const off = started ? 1 : 0;
        if (buf.length < off + 4) return;
        const len = buf.readInt32BE(off);
        if (buf.length < off + len) return;
        script(started ? String.fromCharCode(buf[0]) : '', buf.subarray(off + 4, off + len), socket);
        buf = buf.subarray(off + len);
        started = true;
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    await f((server.address() as net.AddressInfo).port);
  } finally {
    for (const s of sockets) s.destroy();
    server.close();
  }
}

const opts = (port: number) => ({ host: '127.0.0.1', port, user: 'u', password: 'p', replication: 'true' as const, connectTimeoutMs: 2000 });

test('connection: a slow consumer pauses the socket (backpressure)', async (t) => {
  const count = 1024;
  const chunk = encodeXLogData({ start: 0n, end: 0n, sendTime: 0n, data: Buffer.alloc(64 * 1024, 1) });
  const total = count * chunk.length; // 64 MiB
  let serverFlushed = 0;
  await withServer(
    (code, _body, socket) => {
      if (code === '') socket.write(Buffer.concat([authOk, ready]));
      if (code === 'c') socket.write(Buffer.concat([backend('C', 'START_STREAMING\0'), ready]));
      if (code !== 'Q') return;
      socket.write(backend('W', Buffer.from([0, 0, 0])));
      let sent = 0;
      const pump = () => {
        while (sent < total) {
          sent += chunk.length;
          if (!socket.write(backend('d', chunk))) return void socket.once('drain', pump);
          serverFlushed = sent;
        }
        socket.write(backend('c'));
      };
      pump();
    },
    async (port) => {
      const conn = await ReplicationConnection.connect(opts(port));
      const stream = await conn.startReplication({ lsn: 0n });
      const it = stream[Symbol.asyncIterator]();
      await it.next();
      await new Promise((r) => setTimeout(r, 300));
      t.diagnostic(`while the consumer slept the server flushed ${serverFlushed} of ${total} bytes`);
      assert.ok(serverFlushed < total / 4);
      let n = 1;
      while (!(await it.next()).done) n++;
      assert.equal(n, count);
      assert.equal(stream.timelineEnd, null);
      await conn.close();
    },
  );
});

test('connection: a server that never answers times out with host:port', async () => {
  await withServer(
    () => {},
    async (port) => {
      await assert.rejects(ReplicationConnection.connect({ ...opts(port), connectTimeoutMs: 200 }), {
        code: 'protocol.error',
        message: new RegExp(`127\\.0\\.0\\.1:${port} timed out after 200 ms`),
      });
    },
  );
});

test('connection: MD5 is refused, startup errors are classified', async () => {
  await withServer(
    (code, _b, socket) => code === '' && socket.write(backend('R', Buffer.concat([int32(5), Buffer.from([1, 2, 3, 4])]))),
    async (port) => {
      await assert.rejects(ReplicationConnection.connect(opts(port)), { code: 'protocol.auth_failed', message: /MD5/ });
    },
  );
  await withServer(
    (code, _b, socket) => code === '' && socket.end(backend('E', 'SFATAL\0VFATAL\0C57P03\0Mthe database system is starting up\0\0')),
    async (port) => {
      await assert.rejects(ReplicationConnection.connect(opts(port)), (err: { code: string; message: string; data: { sqlstate: string } }) => {
        assert.equal(err.code, 'protocol.server_error');
        assert.equal(err.data.sqlstate, '57P03');
        assert.match(err.message, /starting up/);
        return true;
      });
    },
  );
});

test('connection: AuthenticationOk without SCRAM server-final is refused', async () => {
  await withServer(
    (code, body, socket) => {
      if (code === '') socket.write(backend('R', Buffer.concat([int32(10), Buffer.from('SCRAM-SHA-256\0\0')])));
      if (code === 'p') {
        const nonce = /r=([^,]+)/.exec(body.toString('latin1'))?.[1];
        if (nonce) socket.write(backend('R', Buffer.concat([int32(11), Buffer.from(`r=${nonce}srv,s=c2FsdA==,i=4096`)])));
        if (body.toString('latin1').startsWith('c=biws')) socket.write(Buffer.concat([authOk, ready]));
      }
    },
    async (port) => {
      await assert.rejects(ReplicationConnection.connect(opts(port)), { code: 'protocol.error', message: /AuthenticationOk before completing SCRAM/ });
    },
  );
});

test('connection: the server closing mid-query rejects with host:port', async () => {
  await withServer(
    (code, _b, socket) => {
      if (code === '') socket.write(Buffer.concat([authOk, ready]));
      if (code === 'Q') socket.destroy();
    },
    async (port) => {
      const conn = await ReplicationConnection.connect(opts(port));
      await assert.rejects(conn.identifySystem(), { code: 'protocol.error', message: new RegExp(`127\\.0\\.0\\.1:${port} was lost`) });
      assert.ok(conn.closed);
    },
  );
});
