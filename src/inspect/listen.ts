/** Starting the inspector on the port asked for, or on the default one with a free port as fallback. */
import { DEFAULT_PORT, startInspector, isLoopback, type InspectTarget, type Inspector } from './server.ts';

export interface ListenOptions {
  port?: number;
  host?: string;
  /** Step bound of steered runs (`--max-steps`). */
  maxSteps?: number;
}

export async function listen(target: InspectTarget, o: ListenOptions, warn: (line: string) => void): Promise<Inspector> {
  const host = o.host ?? '127.0.0.1';
  const extra = o.maxSteps !== undefined ? { maxSteps: o.maxSteps } : {};
  if (!isLoopback(host)) warn(`# warning: serving on ${host}, reachable from other machines; the inspector has no authentication`);
  try {
    return await startInspector(target, { host, port: o.port ?? DEFAULT_PORT, ...extra });
  } catch (e) {
    // Only the default port falls back: a port the user chose is theirs to change.
    if (o.port === undefined && (e as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      warn(`# port ${DEFAULT_PORT} is in use; using a free port instead`);
      return startInspector(target, { host, port: 0, ...extra });
    }
    throw e;
  }
}
