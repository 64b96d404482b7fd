/**
 * `tdxsim export <log> --format …`: the log as a Mermaid sequence diagram or Perfetto trace, or the
 * model's statecharts as Mermaid or SVG (src/export/). Writes to stdout, or to `--out`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { readLog, tearNotice, type ParsedLog } from '../log/reader.ts';
import { openIndexed } from '../replay/seek.ts';
import { indexNotices } from './replay.ts';
import { scenarioFromLog } from '../replay/replay.ts';
import { loadScenarioFile } from '../scenario/load.ts';
import type { Scenario } from '../scenario/schema.ts';
import { logToMermaid, logToPerfetto, machinesOf, statechartMermaid, statechartSvg } from '../session/exporters.ts';
import { isLogFile, openLogOrScenario, refuseNonRegular } from '../session/open.ts';
import { traceCmdReport } from '../export/traceCmd.ts';
import { EXIT_OK } from './exitCodes.ts';

export const EXPORT_FORMATS = ['mermaid', 'perfetto', 'statechart-mermaid', 'statechart-svg', 'trace-cmd'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface ExportCliOptions {
  format: ExportFormat;
  out?: string;
  actor?: string;
  /** The result as JSON: the files written, or the text. */
  json?: boolean;
  /** Only steps from … to (inclusive) of a log: read from the nearest checkpoint, however long the log. */
  from?: number;
  to?: number;
}

/**
 * Steps `from` … `to` of the log at `file`, opened through its checkpoint index: a window of a huge log
 * costs what the window holds.
 */
function logWindow(file: string, o: ExportCliOptions): { log: ParsedLog; file: string } {
  const h = openIndexed(file, indexNotices(file, (l) => process.stderr.write(l + '\n')));
  try {
    if (h.torn !== null) process.stderr.write(`tdxsim: warning: ${tearNotice(file, h.torn)}\n`);
    const from = o.from ?? 1;
    const to = o.to ?? h.steps;
    if (from < 1 || to > h.steps || from > to) throw new RangeError(`--from ${from} --to ${to}: the log has steps 1..${h.steps}`);
    const events = [...h.events(from, to)];
    return { log: { header: h.header, events, end: to === h.steps ? h.end : null, lines: to + 1, torn: null, signed: null }, file };
  } finally {
    h.close();
  }
}

/** Statecharts need only the model: the scenario from a log's header (torn or not), or the scenario itself. */
function scenarioOf(arg: string): Scenario {
  refuseNonRegular(arg);
  if (isLogFile(arg)) return scenarioFromLog(readLog(arg, { allowTorn: true }), arg);
  return loadScenarioFile(arg).scenario;
}

/** With `--json`, what was written where (files), or the text itself (stdout), as one JSON document. */
function emit(text: string, o: ExportCliOptions, print: (line: string) => void, what: string): number {
  if (o.out === undefined) {
    if (o.json) print(JSON.stringify({ format: o.format, text }));
    else print(text.endsWith('\n') ? text.slice(0, -1) : text);
  } else {
    writeFileSync(o.out, text);
    if (o.json) print(JSON.stringify({ format: o.format, written: [{ file: o.out, what }] }));
    else process.stderr.write(`# wrote ${what} to ${o.out}\n`);
  }
  return EXIT_OK;
}

export function exportCommand(arg: string, o: ExportCliOptions, print: (line: string) => void): number | Promise<number> {
  switch (o.format) {
    case 'mermaid':
    case 'perfetto': {
      // A torn log is exported up to its last intact step, after a notice that says so.
      const windowed = o.from !== undefined || o.to !== undefined;
      if (windowed) refuseNonRegular(arg);
      if (windowed && !isLogFile(arg)) throw new RangeError('--from and --to select steps of a log file');
      const { log, file } = windowed ? logWindow(arg, o) : openLogOrScenario(arg, {}, { allowTorn: true });
      if (!windowed && log.torn !== null) process.stderr.write(`tdxsim: warning: ${tearNotice(file, log.torn)}\n`);
      const opts = o.actor !== undefined ? { actor: o.actor } : {};
      if (o.format === 'mermaid') return emit(logToMermaid(log, file, { ...opts, title: `${scenarioFromLog(log, file).name}: ${path.basename(file)}` }), o, print, 'a Mermaid sequence diagram');
      return emit(JSON.stringify(logToPerfetto(log, file, opts)) + '\n', o, print, 'a Perfetto trace (open it at ui.perfetto.dev)');
    }
    case 'statechart-mermaid': {
      const machines = machinesOf(scenarioOf(arg), o.actor);
      if (o.actor !== undefined) return emit(statechartMermaid(machines[0]!.machine), o, print, 'a Mermaid state diagram');
      // Several diagrams: a Markdown document with one fenced block each, as a README would hold them.
      const md = machines.map(({ machine, actors }) => `## ${machine.id} (${actors.join(', ')})\n\n\`\`\`mermaid\n${statechartMermaid(machine)}\`\`\`\n`).join('\n');
      return emit(md, o, print, 'Mermaid state diagrams');
    }
    case 'statechart-svg':
      return exportSvg(arg, o, print);
    case 'trace-cmd': {
      const { log, file } = openLogOrScenario(arg, {}, { allowTorn: true });
      if (log.torn !== null) process.stderr.write(`tdxsim: warning: ${tearNotice(file, log.torn)}\n`);
      return emit(traceCmdReport(log, file), o, print, 'a trace-cmd report');
    }
  }
}

async function exportSvg(arg: string, o: ExportCliOptions, print: (line: string) => void): Promise<number> {
  const machines = machinesOf(scenarioOf(arg), o.actor);
  if (o.actor !== undefined) return emit(await statechartSvg(machines[0]!.machine), o, print, 'an SVG statechart');
  if (o.out === undefined) throw new RangeError('--format statechart-svg draws one machine per file: pass --actor ID, or --out DIR to write one SVG per machine');
  mkdirSync(o.out, { recursive: true });
  const written: { file: string; machine: string; actors: string[] }[] = [];
  for (const { machine, actors } of machines) {
    const file = path.join(o.out, `${machine.id}.svg`);
    writeFileSync(file, await statechartSvg(machine));
    written.push({ file, machine: machine.id, actors });
    if (!o.json) process.stderr.write(`# wrote ${file}\n`);
  }
  if (o.json) print(JSON.stringify({ format: o.format, written }));
  return EXIT_OK;
}
