/**
 * `tdxsim inspect <log | scenario | trace>`: open a log (or a scenario's fresh in-memory run) in the local
 * web inspector. A log that cannot be opened still gets a page: the error, naming file and line, is shown
 * there and printed here. A torn log (its last line cut mid-write) opens: its intact prefix is shown,
 * with the tear named on the page and here. A real trace (what `tdxsim import` reads) is imported in
 * memory, nothing written, and its model run opens with the trace beside it.
 */
import { LogError } from '../log/errors.ts';
import { openInBrowser } from '../inspect/browser.ts';
import { listen } from '../inspect/listen.ts';
import { readLog } from '../log/reader.ts';
import { isLogFile, openLogOrScenario } from '../session/open.ts';
import type { Inspector, InspectTarget } from '../inspect/server.ts';
import { InspectSession } from '../inspect/session.ts';
import { failureOf } from '../inspect/summary.ts';
import { importParsed } from '../import/importTrace.ts';
import { EXIT_OK } from './exitCodes.ts';
import { importedLinks, importedTarget, traceFileOf } from './import.ts';

export interface InspectCliOptions {
  port?: number;
  host?: string;
  open?: boolean;
  seed?: number;
  maxSteps?: number;
  /** Called with the server once it listens (tests and embedders close it with this). */
  onInspector?: (inspector: Inspector) => void;
}

/** The session to serve, or the error page's content when the log cannot be opened (also printed). */
export function inspectTarget(arg: string, o: InspectCliOptions = {}, warn: (line: string) => void = (l) => process.stderr.write(l + '\n')): InspectTarget {
  const trace = isLogFile(arg) ? null : traceFileOf(arg);
  if (trace !== null) {
    for (const d of trace.diagnostics.slice(0, 20)) warn(`tdxsim: warning: ${d.file}:${d.line}: ${d.message}`);
    if (trace.diagnostics.length > 20) warn(`tdxsim: warning: … ${trace.diagnostics.length - 20} more malformed line(s) skipped`);
    return importedTarget(importParsed(trace, { keepLog: true, ...(o.maxSteps !== undefined ? { maxSteps: o.maxSteps } : {}) }), { scenario: null, log: null });
  }
  try {
    const { log, file } = isLogFile(arg)
      ? { log: readLog(arg, { allowTorn: true }), file: arg }
      : openLogOrScenario(arg, { ...(o.seed !== undefined ? { seed: o.seed } : {}), ...(o.maxSteps !== undefined ? { maxSteps: o.maxSteps } : {}) });
    if (log.torn) warn(`tdxsim: warning: ${file}:${log.torn.line}: torn last line (the writer stopped mid-line); showing the ${log.events.length} intact steps before it`);
    return { session: InspectSession.open(log, file) };
  } catch (e) {
    // A file that cannot be read at all is plain bad input; a log whose content is wrong gets the page.
    if (!(e instanceof LogError) || e.code === 'IO') throw e;
    warn(`tdxsim: ${e.message}`);
    return { error: { title: e.code === 'TORN_LINE' ? 'The log is torn' : 'The log cannot be opened', message: e.message } };
  }
}

export function inspectCommand(arg: string, o: InspectCliOptions, print: (line: string) => void): Promise<number> {
  // Scenario errors throw here, before any server starts: that is plain bad input (exit 2).
  const target = inspectTarget(arg, o);
  const warn = (line: string) => process.stderr.write(line + '\n');
  return listen(target, o, warn).then((inspector) => {
    o.onInspector?.(inspector);
    if ('session' in target) {
      const s = target.session;
      const outcome = s.end ? `${s.end.outcome.status}${s.end.outcome.reason ? ` (${s.end.outcome.reason})` : ''}` : 'unknown (no end record)';
      print(`# ${s.file}: scenario ${s.scenario.name}, ${s.steps} steps, outcome ${outcome}`);
      const t = target.trace;
      if (t !== undefined) {
        print(`# trace: ${t.summary.inputs.map((i) => `${i.file} (${i.format}, ${i.events} events)`).join(', ')}; ${t.summary.divergenceCount === 0 ? 'no divergence' : `${t.summary.divergenceCount} divergence(s)`}`);
        for (const line of importedLinks(t, inspector.url)) print(line);
      } else {
        const f = failureOf(s);
        if (f) print(`# counterexample: opens on step ${f.step}: ${inspector.url}#step=${f.step}`);
      }
    }
    print(`# inspector: ${inspector.url}   (Ctrl-C to stop)`);
    if (o.open) openInBrowser(inspector.url, warn);
    return EXIT_OK;
  });
}
