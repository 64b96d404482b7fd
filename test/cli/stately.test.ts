/** `run --stately` must fail fast without network: the probe that runs before the Sky client is created. */
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { probeReachable, ServiceUnreachable } from '../../src/inspect/stately.ts';

describe('probeReachable (what --stately checks before connecting to Stately)', () => {
  it('resolves when the port accepts a connection', async () => {
    const server = createServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    await expect(probeReachable('127.0.0.1', port, 5_000)).resolves.toBeUndefined();
    server.close();
  });

  it('a refused connection is a usage error (exit 2) that names the host and points to the local inspector', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    await new Promise<void>((r) => server.close(() => r()));
    const probe = probeReachable('127.0.0.1', port, 5_000);
    await expect(probe).rejects.toBeInstanceOf(ServiceUnreachable);
    await expect(probe).rejects.toThrow(`--stately: cannot reach 127.0.0.1:${port} (ECONNREFUSED); the Stately inspector is a hosted service and needs network access. The local inspector (--inspect) works offline.`);
  });

  it('a name that does not resolve fails the same way', async () => {
    await expect(probeReachable('no-such-host.invalid', 443, 5_000)).rejects.toThrow(/--stately: cannot reach no-such-host\.invalid:443 \((ENOTFOUND|EAI_AGAIN)\)/);
  });
});
