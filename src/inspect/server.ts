/**
 * The inspector's local HTTP server: the web app's built files, and a small JSON API over the opened logs
 * (logs.ts: the one named on the command line, `main`, and those made by steering). Every /api/ request
 * about a log takes `log=` (default `main`).
 *
 *   GET  /                       the app (or, if the log could not be opened, an error page naming file and line)
 *   GET  /assets/…               the bundle's files, from a fixed table (assets.ts)
 *   GET  /api/summary            scenario, actors, outcome, the failing step, preemptions, lasso, tear, steering
 *   GET  /api/events?from&count  rows of the sequence view (count ≤ 2000)
 *   GET  /api/step?n&actor       everything shown for step n, with `actor`'s context (stepView.ts)
 *   GET  /api/find?q&from&dir&wrap  next/previous step matching a filter (query.ts), wrapping round if asked
 *   GET  /api/matches?q          every step matching a filter (the sequence view's "hide the rest")
 *   GET  /api/statecharts        laid-out statecharts of the model's machines
 *   GET  /api/statechart?machine&expand  one machine with the compound states not in `expand` collapsed
 *   GET  /api/diff?a&b           what changed between two steps (diff.ts)
 *   GET  /api/verify             the background check `replay --verify` makes (answers when it is done)
 *   GET  /api/choices?n          the messages that could be delivered after step n (steer.ts)
 *   POST /api/steer              {log, n, choice}: a new log steered at step n+1; answers its id
 *   GET  /api/download           a steered log's .jsonl
 *   GET  /api/live               server-sent events: the step count while `run --inspect` delivers
 *   GET  /api/trace              the imported trace beside the run (`import --inspect`): divergences, livelocks, placement
 *   GET  /api/trace-events?from&count  the trace's events, formatted (count ≤ 2000)
 *
 * With an imported trace, /api/find and /api/matches also match the trace's events (traceRows.ts), and
 * /api/find walks the sequence view's rows (`trace=` names the trace event it starts from).
 *
 * It binds to 127.0.0.1 unless told otherwise. On a loopback address it rejects requests whose Host header
 * is not the address it serves, so a web page elsewhere cannot reach it through DNS rebinding; and any
 * request that carries an Origin header other than the inspector's own (a page on another site) is
 * refused with 403, whatever the address. POST is accepted only as JSON, on /api/steer. Nothing from the
 * request is ever used as a file path.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FindResult, LiveUpdate, MatchesResult, SteerResult } from './api.ts';
import { loadAssets } from './assets.ts';
import { diffSteps } from './diff.ts';
import { OpenedLogs, type OpenedLog } from './logs.ts';
import { appPage, errorPage } from './page.ts';
import { compileQuery } from './query.ts';
import type { InspectSession } from './session.ts';
import { collapsedLayoutOf, statechartsOf } from './statecharts.ts';
import { choicesAt, steer, SteerError } from './steer.ts';
import { eventRow, stepView } from './stepView.ts';
import { summaryOf } from './summary.ts';
import type { TraceView } from './traceView.ts';

export const DEFAULT_PORT = 4780;
const MAX_EVENTS_PER_REQUEST = 2000;
/** A steering request is three small fields. */
const MAX_BODY = 4096;

/** A log to serve (with the real trace it is the model's run of, for `import --inspect`), or the error page's content. */
export type InspectTarget = LogTarget | { error: { title: string; message: string } };
export type LogTarget = { session: InspectSession; trace?: TraceView };

export interface InspectorOptions {
  /** @default '127.0.0.1' */
  host?: string;
  /** 0 picks a free port. @default DEFAULT_PORT */
  port?: number;
  /** Where the built web app is. @default dist/web/ (assets.ts) */
  webDir?: string;
  /** The compiled verifier worker; null verifies on the server's thread. @default verifyWorker.js beside this module, if built */
  verifyWorker?: URL | null;
  /** Step bound of a steered run's FIFO continuation, as `tdxsim run --max-steps`. @default DEFAULT_MAX_STEPS */
  maxSteps?: number;
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

function send(res: ServerResponse, status: number, type: string, body: string | Buffer, csp = APP_CSP, extra: Record<string, string> = {}): void {
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'content-security-policy': csp,
    ...extra,
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(value));
}

class BadRequest extends Error {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

/** A query parameter as a non-negative integer, or `fallback`; anything else is a 400. */
function intParam(url: URL, name: string, fallback: number): number {
  const v = url.searchParams.get(name);
  if (v === null || v === '') return fallback;
  if (!/^\d{1,9}$/.test(v)) throw new BadRequest(`${name} must be a non-negative integer, got ${JSON.stringify(v.slice(0, 40))}`);
  return Number(v);
}

function stepParam(url: URL, name: string, session: InspectSession, fallback?: number): number {
  const n = intParam(url, name, fallback ?? -1);
  if (n < 0) throw new BadRequest(`${name}: a step is required`);
  if (n > session.steps) throw new BadRequest(`step ${n}: the log has steps 0..${session.steps}`);
  return n;
}

/** 127.0.0.0/8, ::1 and localhost: only this machine can connect. */
export function isLoopback(host: string): boolean {
  return /^127\.\d+\.\d+\.\d+$/.test(host) || host === '::1' || host === 'localhost';
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      body += c;
      if (body.length > MAX_BODY) {
        reject(new BadRequest(`request body over ${MAX_BODY} bytes`, 413));
        req.destroy();
      }
    });
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

export function startInspector(target: InspectTarget, opts: InspectorOptions = {}): Promise<Inspector> {
  const host = opts.host ?? '127.0.0.1';
  const assets = opts.webDir === undefined ? loadAssets() : loadAssets(opts.webDir);
  const totals = new Map<string, number>();
  let resolveViewer: () => void = () => {};
  const firstViewer = new Promise<void>((r) => (resolveViewer = r));
  let allowedHosts = new Set<string>();
  let allowedOrigins = new Set<string>();

  const logs = 'session' in target ? new OpenedLogs(target.session, opts.verifyWorker, target.trace ?? null) : null;

  function total(entry: OpenedLog, q: string, match: (seq: number) => boolean): number {
    // The total is a full scan; remember it per query while the log does not grow.
    const key = `${entry.id}\u0000${entry.session.steps}\u0000${q}`;
    let t = totals.get(key);
    if (t === undefined) {
      t = 0;
      for (let s = 1; s <= entry.session.steps; s++) if (match(s)) t++;
      if (totals.size > 64) totals.clear();
      totals.set(key, t);
    }
    return t;
  }

  /** Matching trace events, counted once per query. */
  function traceTotal(trace: TraceView, q: string, match: (id: number) => boolean): number {
    const key = `trace\u0000${q}`;
    let t = totals.get(key);
    if (t === undefined) {
      t = trace.searchable.reduce((n, _, id) => n + (match(id) ? 1 : 0), 0);
      if (totals.size > 64) totals.clear();
      totals.set(key, t);
    }
    return t;
  }

  /** With a trace, the search walks the sequence view's rows: a step's own message, or the trace event on the row. */
  function findRow(entry: OpenedLog, trace: TraceView, q: string, from: number, fromTrace: number | null, dir: 'next' | 'prev', wrap: boolean): FindResult {
    const compiled = compileQuery(q);
    const session = entry.session;
    if (compiled === null) return { seq: null, total: 0, wrapped: false, trace: null, traceTotal: 0 };
    const stepMatch = (s: number) => compiled(eventRow(session, s));
    const traceMatch = (id: number) => compiled(trace.searchable[id]!);
    const plan = trace.plan;
    const hit = (r: number): FindResult | null => {
      const row = plan[r]!;
      if (row.trace !== null && traceMatch(row.trace)) return { seq: row.seq, trace: row.trace, total: 0, wrapped: false };
      if (row.kind === 'step' && row.seq > 0 && stepMatch(row.seq)) return { seq: row.seq, trace: null, total: 0, wrapped: false };
      return null;
    };
    const at = fromTrace !== null ? (trace.rowOfTrace(fromTrace) ?? trace.firstRowOfStep(from)) : trace.firstRowOfStep(from);
    const scan = (start: number, end: number): FindResult | null => {
      if (dir === 'next') {
        for (let r = Math.max(0, start); r <= Math.min(end, plan.length - 1); r++) {
          const x = hit(r);
          if (x) return x;
        }
      } else {
        for (let r = Math.min(start, plan.length - 1); r >= Math.max(0, end); r--) {
          const x = hit(r);
          if (x) return x;
        }
      }
      return null;
    };
    let found = dir === 'next' ? scan(at + 1, plan.length - 1) : scan(at - 1, 0);
    let wrapped = false;
    if (found === null && wrap) {
      found = dir === 'next' ? scan(0, at) : scan(plan.length - 1, at);
      wrapped = found !== null;
    }
    return { seq: found?.seq ?? null, trace: found?.trace ?? null, total: total(entry, q, stepMatch), wrapped, traceTotal: traceTotal(trace, q, traceMatch) };
  }

  function find(entry: OpenedLog, q: string, from: number, dir: 'next' | 'prev', wrap: boolean): FindResult {
    const compiled = compileQuery(q);
    const session = entry.session;
    if (compiled === null) return { seq: null, total: 0, wrapped: false };
    const match = (s: number) => compiled(eventRow(session, s));
    const n = session.steps;
    const scan = (start: number, end: number): number | null => {
      if (dir === 'next') {
        for (let s = Math.max(1, start); s <= Math.min(end, n); s++) if (match(s)) return s;
      } else {
        for (let s = Math.min(start, n); s >= Math.max(1, end); s--) if (match(s)) return s;
      }
      return null;
    };
    let seq = dir === 'next' ? scan(from + 1, n) : scan(from - 1, 1);
    let wrapped = false;
    if (seq === null && wrap) {
      // Round the end: the first match from the other end, which may be the step we started from.
      seq = dir === 'next' ? scan(1, from) : scan(n, from);
      wrapped = seq !== null;
    }
    return { seq, total: total(entry, q, match), wrapped };
  }

  function matches(entry: OpenedLog, q: string): MatchesResult {
    const compiled = compileQuery(q);
    const seqs: number[] = [];
    if (compiled !== null) for (let s = 1; s <= entry.session.steps; s++) if (compiled(eventRow(entry.session, s))) seqs.push(s);
    if (entry.trace === null) return { seqs };
    const traces: number[] = [];
    if (compiled !== null) entry.trace.searchable.forEach((e, id) => compiled(e) && traces.push(id));
    return { seqs, traces };
  }

  function needTrace(entry: OpenedLog): TraceView {
    if (entry.trace === null) throw new BadRequest(entry.id === 'main' ? 'this log was not imported from a trace (tdxsim import --inspect opens one that was)' : `log ${entry.id} is a steered run: the trace belongs to the log it came from`, 404);
    return entry.trace;
  }

  function live(req: IncomingMessage, res: ServerResponse, session: InspectSession): void {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-content-type-options': 'nosniff' });
    const push = () => {
      const u: LiveUpdate = { steps: session.steps, live: session.live };
      res.write(`data: ${JSON.stringify(u)}\n\n`);
    };
    push();
    resolveViewer();
    if (!session.live) return void res.end();
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

  async function steerRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) throw new BadRequest('send the steering request as application/json', 415);
    let body: unknown;
    try {
      body = JSON.parse(await readBody(req));
    } catch (e) {
      if (e instanceof BadRequest) throw e;
      throw new BadRequest('the request body is not JSON');
    }
    const b = (body ?? {}) as { log?: unknown; n?: unknown; choice?: unknown };
    const parent = logs!.get(typeof b.log === 'string' ? b.log : null);
    if (parent === null) throw new BadRequest(`no log ${JSON.stringify(String(b.log).slice(0, 20))}`, 404);
    if (typeof b.n !== 'number' || typeof b.choice !== 'number') throw new BadRequest('n and choice must be numbers');
    try {
      const s = await steer(parent.session, b.n, b.choice, opts.maxSteps);
      const entry = logs!.addSteered(s.session, s.info, parent.id, s.text);
      const r: SteerResult = { log: entry.id, steps: s.session.steps, step: s.info.step };
      return sendJson(res, 200, r);
    } catch (e) {
      if (e instanceof SteerError) throw new BadRequest(e.message, e.message.startsWith('the run is still') ? 409 : 400);
      throw e;
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (isLoopback(host) && !allowedHosts.has((req.headers.host ?? '').toLowerCase())) {
      return send(res, 403, 'text/plain; charset=utf-8', 'tdxsim inspect: unexpected Host header; open the URL the command printed\n');
    }
    const origin = req.headers.origin;
    if (origin !== undefined) {
      const o = origin.toLowerCase();
      const own = isLoopback(host) ? allowedOrigins.has(o) : o === `http://${(req.headers.host ?? '').toLowerCase()}`;
      if (!own) return send(res, 403, 'text/plain; charset=utf-8', `tdxsim inspect: requests from ${origin.slice(0, 100)} are refused; only the inspector's own page may use it\n`);
    }
    const url = new URL(req.url ?? '/', 'http://inspector.invalid');
    const path = url.pathname;
    const isSteer = path === '/api/steer';
    if (!(req.method === 'GET' || req.method === 'HEAD' || (req.method === 'POST' && isSteer)) || (isSteer && req.method !== 'POST')) {
      res.setHeader('allow', isSteer ? 'POST' : 'GET, HEAD');
      return send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
    }
    const asset = assets?.get(path);
    if (asset) return send(res, 200, asset.type, asset.body);
    if (path === '/favicon.ico') return void res.writeHead(204).end();

    if (path === '/' || path === '/index.html') {
      if (!('session' in target)) return send(res, 500, 'text/html; charset=utf-8', errorPage(target.error.title, target.error.message, 'Fix or re-create the log, then run tdxsim inspect again.'), ERROR_CSP);
      if (assets === null) return send(res, 500, 'text/html; charset=utf-8', errorPage('The web app is not built', 'dist/web/main.js is missing.', 'Run npm install (or npm run build) in the tdxsim directory.'), ERROR_CSP);
      return send(res, 200, 'text/html; charset=utf-8', appPage());
    }
    if (!path.startsWith('/api/')) return send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
    if (logs === null) return sendJson(res, 500, { error: 'error' in target ? target.error.message : 'no log' });
    try {
      if (isSteer) return await steerRequest(req, res);
      const logId = url.searchParams.get('log');
      const entry = logs.get(logId);
      if (entry === null) throw new BadRequest(`no log ${JSON.stringify(logId!.slice(0, 20))} (steered logs are kept while the inspector runs, the last 16)`, 404);
      const session = entry.session;
      switch (path) {
        case '/api/summary':
          return sendJson(res, 200, summaryOf(session, entry.id, entry.steered, entry.trace));
        case '/api/events': {
          const from = Math.max(1, intParam(url, 'from', 1));
          const count = Math.min(MAX_EVENTS_PER_REQUEST, intParam(url, 'count', 500));
          const rows = [];
          for (let s = from; s < from + count && s <= session.steps; s++) rows.push(eventRow(session, s));
          return sendJson(res, 200, { steps: session.steps, rows });
        }
        case '/api/step': {
          const n = stepParam(url, 'n', session, 0);
          const actor = url.searchParams.get('actor');
          if (actor !== null && !session.model.indexOf.has(actor)) throw new BadRequest(`no actor ${JSON.stringify(actor.slice(0, 60))}`);
          const view = stepView(session, n, actor);
          return sendJson(res, 200, entry.trace === null ? view : { ...view, trace: entry.trace.stepInfo(n) });
        }
        case '/api/find': {
          const dir = url.searchParams.get('dir') === 'prev' ? 'prev' : 'next';
          const q = (url.searchParams.get('q') ?? '').slice(0, 500);
          const from = intParam(url, 'from', 0);
          const wrap = url.searchParams.get('wrap') === '1';
          if (entry.trace === null) return sendJson(res, 200, find(entry, q, from, dir, wrap));
          const t = url.searchParams.get('trace');
          const fromTrace = t === null || t === '' ? null : intParam(url, 'trace', 0);
          if (fromTrace !== null && fromTrace >= entry.trace.rows.length) throw new BadRequest(`trace event ${fromTrace}: the trace has events 0..${entry.trace.rows.length - 1}`);
          return sendJson(res, 200, findRow(entry, entry.trace, q, from, fromTrace, dir, wrap));
        }
        case '/api/trace':
          return sendJson(res, 200, needTrace(entry).info);
        case '/api/trace-events': {
          const trace = needTrace(entry);
          const from = intParam(url, 'from', 0);
          const count = Math.min(MAX_EVENTS_PER_REQUEST, intParam(url, 'count', 500));
          return sendJson(res, 200, { events: trace.rows.length, rows: trace.rows.slice(from, from + count) });
        }
        case '/api/matches':
          return sendJson(res, 200, matches(entry, (url.searchParams.get('q') ?? '').slice(0, 500)));
        case '/api/statecharts':
          return sendJson(res, 200, await statechartsOf(session.model));
        case '/api/statechart': {
          const id = url.searchParams.get('machine') ?? '';
          const machine = session.model.actors.find((a) => a.machine.id === id)?.machine;
          if (!machine) throw new BadRequest(`no machine ${JSON.stringify(id.slice(0, 60))} in this model`);
          const expand = (url.searchParams.get('expand') ?? '').split(',').filter((x) => x !== '');
          let layout;
          try {
            layout = collapsedLayoutOf(machine, expand);
          } catch (e) {
            throw e instanceof RangeError ? new BadRequest(e.message) : e;
          }
          return sendJson(res, 200, await layout);
        }
        case '/api/diff':
          return sendJson(res, 200, diffSteps(session, stepParam(url, 'a', session), stepParam(url, 'b', session)));
        case '/api/verify':
          if (session.live) throw new BadRequest('the run is still in progress: it is verified once it has ended', 409);
          return sendJson(res, 200, await logs.verification(entry));
        case '/api/choices':
          if (session.live) throw new BadRequest('the run is still in progress: steer it once it has ended', 409);
          return sendJson(res, 200, choicesAt(session, stepParam(url, 'n', session)));
        case '/api/download':
          if (entry.text === null) throw new BadRequest('only steered logs are offered for download: the opened log is the file you named', 404);
          return send(res, 200, 'application/jsonl; charset=utf-8', entry.text, APP_CSP, { 'content-disposition': `attachment; filename="${entry.steered!.fileName.replace(/[^\w.-]/g, '_')}"` });
        case '/api/live':
          return live(req, res, session);
        default:
          return sendJson(res, 404, { error: `no such API: ${path}` });
      }
    } catch (e) {
      if (e instanceof BadRequest) return sendJson(res, e.status, { error: e.message });
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
      allowedOrigins = new Set([...allowedHosts].map((h) => `http://${h}`));
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
