/**
 * The inspector's local HTTP server: the web app's built files, and a small JSON API over one session.
 *
 *   GET /                     the app (or, if the log could not be opened, an error page naming file and line)
 *   GET /assets/…             the bundle's files, from a fixed table (assets.ts)
 *   GET /api/summary          scenario, actors, outcome, the failing step of a counterexample
 *   GET /api/events?from&count  rows of the sequence view (count ≤ 2000)
 *   GET /api/step?n&actor     everything shown for step n, with `actor`'s context (stepView.ts)
 *   GET /api/find?q&from&dir  next/previous step matching a filter (query.ts)
 *   GET /api/statecharts      laid-out statecharts of the model's machines
 *   GET /api/live             server-sent events: the step count while `run --inspect` delivers
 *
 * It binds to 127.0.0.1 unless told otherwise and answers only GET/HEAD. On a loopback address it also
 * rejects requests whose Host header is not the address it serves, so a web page elsewhere cannot reach
 * it through DNS rebinding. Nothing from the request is ever used as a file path.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FindResult, LiveUpdate } from './api.ts';
import { loadAssets } from './assets.ts';
import { appPage, errorPage } from './page.ts';
import { compileQuery, type Searchable } from './query.ts';
import type { InspectSession } from './session.ts';
import { statechartsOf } from './statecharts.ts';
import { eventRow, stepView } from './stepView.ts';
import { summaryOf } from './summary.ts';

export const DEFAULT_PORT = 4780;
const MAX_EVENTS_PER_REQUEST = 2000;

export type InspectTarget = { session: InspectSession } | { error: { title: string; message: string } };

export interface InspectorOptions {
  /** @default '127.0.0.1' */
  host?: string;
  /** 0 picks a free port. @default DEFAULT_PORT */
  port?: number;
  /** Where the built web app is. @default dist/web/ (assets.ts) */
  webDir?: string;
}

export interface Inspector {
  url: string;
  server: Server;
  /** Resolves when a page first subscribes to live updates. */
  firstViewer: Promise<void>;
  close(): Promise<void>;
}

const APP_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const ERROR_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function send(res: ServerResponse, status: number, type: string, body: string | Buffer, csp = APP_CSP): void {
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'content-security-policy': csp,
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(value));
}

/** A query parameter as a non-negative integer, or `fallback`; anything else is a 400. */
function intParam(url: URL, name: string, fallback: number): number {
  const v = url.searchParams.get(name);
  if (v === null || v === '') return fallback;
  if (!/^\d{1,9}$/.test(v)) throw new BadRequest(`${name} must be a non-negative integer, got ${JSON.stringify(v.slice(0, 40))}`);
  return Number(v);
}

class BadRequest extends Error {}

/** 127.0.0.0/8, ::1 and localhost: only this machine can connect. */
export function isLoopback(host: string): boolean {
  return /^127\.\d+\.\d+\.\d+$/.test(host) || host === '::1' || host === 'localhost';
}

export function startInspector(target: InspectTarget, opts: InspectorOptions = {}): Promise<Inspector> {
  const host = opts.host ?? '127.0.0.1';
  const assets = opts.webDir === undefined ? loadAssets() : loadAssets(opts.webDir);
  const totals = new Map<string, number>();
  let resolveViewer: () => void = () => {};
  const firstViewer = new Promise<void>((r) => (resolveViewer = r));
  let allowedHosts = new Set<string>();

  const session = 'session' in target ? target.session : null;
  const searchable = (seq: number): Searchable => eventRow(session!, seq);

  function find(q: string, from: number, dir: 'next' | 'prev'): FindResult {
    const match = compileQuery(q);
    if (match === null || session === null) return { seq: null, total: 0 };
    const n = session.steps;
    let seq: number | null = null;
    if (dir === 'next') {
      for (let s = from + 1; s <= n && seq === null; s++) if (match(searchable(s))) seq = s;
    } else {
      for (let s = Math.min(from - 1, n); s >= 1 && seq === null; s--) if (match(searchable(s))) seq = s;
    }
    // The total is a full scan; remember it per query while the log does not grow.
    const key = `${n}\u0000${q}`;
    let total = totals.get(key);
    if (total === undefined) {
      total = 0;
      for (let s = 1; s <= n; s++) if (match(searchable(s))) total++;
      if (totals.size > 64) totals.clear();
      totals.set(key, total);
    }
    return { seq, total };
  }

  function live(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-content-type-options': 'nosniff' });
    const push = () => {
      const u: LiveUpdate = { steps: session?.steps ?? 0, live: session?.live ?? false };
      res.write(`data: ${JSON.stringify(u)}\n\n`);
    };
    push();
    resolveViewer();
    if (session === null || !session.live) return void res.end();
    // Coalesce bursts: a fast run appends thousands of steps a second; the page needs a few updates.
    let timer: NodeJS.Timeout | null = null;
    const off = session.onChange(() => {
      if (!session.live) {
        if (timer) clearTimeout(timer);
        push();
        off();
        res.end();
        return;
      }
      timer ??= setTimeout(() => {
        timer = null;
        push();
      }, 50);
    });
    req.on('close', () => {
      off();
      if (timer) clearTimeout(timer);
    });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (isLoopback(host) && !allowedHosts.has((req.headers.host ?? '').toLowerCase())) {
      return send(res, 403, 'text/plain; charset=utf-8', 'tdxsim inspect: unexpected Host header; open the URL the command printed\n');
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
    }
    const url = new URL(req.url ?? '/', 'http://inspector.invalid');
    const path = url.pathname;
    const asset = assets?.get(path);
    if (asset) return send(res, 200, asset.type, asset.body);
    if (path === '/favicon.ico') return void res.writeHead(204).end();

    if (path === '/' || path === '/index.html') {
      if (!('session' in target)) return send(res, 500, 'text/html; charset=utf-8', errorPage(target.error.title, target.error.message, 'Fix or re-create the log, then run tdxsim inspect again.'), ERROR_CSP);
      if (assets === null) return send(res, 500, 'text/html; charset=utf-8', errorPage('The web app is not built', 'dist/web/main.js is missing.', 'Run npm install (or npm run build) in the tdxsim directory.'), ERROR_CSP);
      return send(res, 200, 'text/html; charset=utf-8', appPage());
    }
    if (!path.startsWith('/api/')) return send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
    if (session === null) return sendJson(res, 500, { error: 'error' in target ? target.error.message : 'no log' });
    try {
      switch (path) {
        case '/api/summary':
          return sendJson(res, 200, summaryOf(session));
        case '/api/events': {
          const from = Math.max(1, intParam(url, 'from', 1));
          const count = Math.min(MAX_EVENTS_PER_REQUEST, intParam(url, 'count', 500));
          const rows = [];
          for (let s = from; s < from + count && s <= session.steps; s++) rows.push(eventRow(session, s));
          return sendJson(res, 200, { steps: session.steps, rows });
        }
        case '/api/step': {
          const n = intParam(url, 'n', 0);
          if (n > session.steps) throw new BadRequest(`step ${n}: the log has steps 0..${session.steps}`);
          const actor = url.searchParams.get('actor');
          if (actor !== null && !session.model.indexOf.has(actor)) throw new BadRequest(`no actor ${JSON.stringify(actor.slice(0, 60))}`);
          return sendJson(res, 200, stepView(session, n, actor));
        }
        case '/api/find': {
          const dir = url.searchParams.get('dir') === 'prev' ? 'prev' : 'next';
          return sendJson(res, 200, find((url.searchParams.get('q') ?? '').slice(0, 500), intParam(url, 'from', 0), dir));
        }
        case '/api/statecharts':
          return sendJson(res, 200, await statechartsOf(session.model));
        case '/api/live':
          return live(req, res);
        default:
          return sendJson(res, 404, { error: `no such API: ${path}` });
      }
    } catch (e) {
      if (e instanceof BadRequest) return sendJson(res, 400, { error: e.message });
      throw e;
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: e instanceof Error ? e.message : String(e) });
      else res.destroy();
    });
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? DEFAULT_PORT, host, () => {
      server.off('error', reject);
      const { port } = server.address() as AddressInfo;
      const shown = host.includes(':') ? `[${host}]` : host;
      allowedHosts = new Set([`${shown}:${port}`, `localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`].map((h) => h.toLowerCase()));
      resolve({
        url: `http://${shown}:${port}/`,
        server,
        firstViewer,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}
