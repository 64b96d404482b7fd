/**
 * `tdxsim import <trace>…`: a real trace in (trace-cmd report, raw ftrace, perf script, dmesg — several
 * files of one run are merged by timestamp), the scenario it implies written out, the model run on it, and
 * the report of where reality and the model part (src/import/). Exit 0 when they do not, 1 when they do,
 * 2 for input that cannot be read (and, under --strict, for any malformed line).
 *
 * With --inspect the report is printed as usual, then the inspector serves the model's run with the trace
 * beside it (src/inspect/traceView.ts); `tdxsim inspect <trace>` does the same without writing anything.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { importParsed, type ImportResult } from '../import/importTrace.ts';
import { parseTraceFiles, type ParsedTrace, type TraceInput } from '../import/parseTrace.ts';
import { reportJson, reportText, type ReportFiles } from '../import/report.ts';
import type { TraceFormat } from '../import/traceEvent.ts';
import { openInBrowser } from '../inspect/browser.ts';
import { listen } from '../inspect/listen.ts';
import type { Inspector, LogTarget } from '../inspect/server.ts';
import { InspectSession } from '../inspect/session.ts';
import { TraceView } from '../inspect/traceView.ts';
import { EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK } from './exitCodes.ts';

export interface ImportCliOptions {
  format?: TraceFormat;
  strict?: boolean;
  json?: boolean;
  scenarioOut?: string;
  log?: string;
  maxSteps?: number;
  /** Open the model's run in the inspector with the trace beside it. */
  inspect?: boolean;
  port?: number;
  host?: string;
  open?: boolean;
  /** Called with the server once it listens (tests close it with this). */
  onInspector?: (inspector: Inspector) => void;
}

/** Events that make a file a kernel trace rather than any text: a printk or an unknown event alone does not. */
const hasKvmOrTdxEvent = (t: ParsedTrace) => t.events.some((e) => e.data.name !== 'unknown' && e.data.name !== 'printk');

/**
 * The trace in `file`, when it is one (`tdxsim inspect` takes a log, a scenario or a trace): a regular file
 * not named like a scenario or a log, with at least one KVM or TDX event in it.
 */
export function traceFileOf(file: string): ParsedTrace | null {
  if (/\.(ya?ml|jsonl?)$/i.test(file) || !existsSync(file) || !statSync(file).isFile()) return null;
  const trace = parseTraceFiles([{ file, text: readFileSync(file, 'utf8') }]);
  return hasKvmOrTdxEvent(trace) ? trace : null;
}

/** The model's run of an imported trace, opened for the inspector with the trace beside it. */
export function importedTarget(r: ImportResult, files: ReportFiles): LogTarget {
  const label = files.log ?? `${r.trace.files.map((f) => f.file).join(' + ')} (imported, run in memory)`;
  return { session: InspectSession.open(r.log, label), trace: new TraceView(r, files) };
}

/** What `import --inspect` and `inspect <trace>` print once the server listens: where to look first. */
export function importedLinks(t: TraceView | undefined, url: string): string[] {
  if (t === undefined || t.summary.first === null) return [];
  const d = t.info.divergences[t.summary.first]!;
  const hash = new URLSearchParams();
  if (d.seq !== null) hash.set('step', String(d.seq));
  if (d.trace?.id !== null && d.trace?.id !== undefined) hash.set('trace', String(d.trace.id));
  return [`# first divergence (${d.kind}) opens at: ${url}#${hash.toString()}`];
}

/** Warnings shown for malformed lines before the rest is summarised as a count. */
const SHOWN_WARNINGS = 20;

export function importCommand(files: readonly string[], o: ImportCliOptions, print: (line: string) => void): number | Promise<number> {
  const inputs: TraceInput[] = [];
  for (const file of files) {
    try {
      inputs.push({ file, text: readFileSync(file, 'utf8') });
    } catch (e) {
      process.stderr.write(`tdxsim: ${file}: cannot read the trace: ${(e as Error).message}\n`);
      return EXIT_BAD_INPUT;
    }
  }
  const trace = parseTraceFiles(inputs, o.format);
  const diag = trace.diagnostics;
  if (o.strict && diag.length > 0) {
    for (const d of diag) process.stderr.write(`${d.file}:${d.line}: ${d.message}\n`);
    process.stderr.write(`tdxsim: ${diag.length} malformed line(s); nothing written (drop --strict to read the rest)\n`);
    return EXIT_BAD_INPUT;
  }
  for (const d of diag.slice(0, SHOWN_WARNINGS)) process.stderr.write(`tdxsim: warning: ${d.file}:${d.line}: ${d.message}\n`);
  if (diag.length > SHOWN_WARNINGS) process.stderr.write(`tdxsim: warning: … ${diag.length - SHOWN_WARNINGS} more malformed line(s) skipped\n`);
  if (!trace.events.some((e) => e.data.name !== 'unknown')) {
    process.stderr.write(`tdxsim: ${files.join(', ')}: no KVM or TDX event to import${trace.events.length > 0 ? ` (${trace.events.length} event(s) of unknown kinds)` : ''}\n`);
    return EXIT_BAD_INPUT;
  }
  // The inspector replays the run from a full log (state hashes and hash chain), as it does any log.
  const r: ImportResult = importParsed(trace, { ...(o.format ? { format: o.format } : {}), ...(o.scenarioOut ? { scenarioFile: o.scenarioOut } : {}), ...(o.maxSteps !== undefined ? { maxSteps: o.maxSteps } : {}), keepLog: o.log !== undefined || !!o.inspect });
  const scenarioFile = o.scenarioOut ?? `${r.built.name}.scenario.yaml`;
  writeFileSync(scenarioFile, r.yaml);
  if (o.log !== undefined && r.logText !== null) writeFileSync(o.log, r.logText);
  const written = { scenario: scenarioFile, log: o.log ?? null };
  if (o.json) print(JSON.stringify(reportJson(r, written)));
  else for (const line of reportText(r, written)) print(line);
  const code = r.first === null ? EXIT_OK : EXIT_FAILURE;
  if (!o.inspect) return code;
  return serveImported(importedTarget(r, written), o, o.json ? (l) => process.stderr.write(l + '\n') : print).then(() => code);
}

/** Starts the inspector on an imported run and prints its URL (to stderr under --json, which keeps stdout one document). */
export async function serveImported(target: LogTarget, o: { port?: number; host?: string; open?: boolean; onInspector?: (inspector: Inspector) => void }, print: (line: string) => void): Promise<Inspector> {
  const warn = (line: string) => process.stderr.write(line + '\n');
  const inspector = await listen(target, { ...(o.port !== undefined ? { port: o.port } : {}), ...(o.host !== undefined ? { host: o.host } : {}) }, warn);
  o.onInspector?.(inspector);
  for (const line of importedLinks(target.trace, inspector.url)) print(line);
  print(`# inspector: ${inspector.url}   (Ctrl-C to stop)`);
  if (o.open) openInBrowser(inspector.url, warn);
  return inspector;
}
