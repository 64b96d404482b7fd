/**
 * `tdxsim export <log> --format …`: the log as a Mermaid sequence diagram or Perfetto trace, or the
 * model's statecharts as Mermaid or SVG (src/export/). Writes to stdout, or to `--out`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { AnyStateMachine } from 'xstate';
import { actorsFor } from '../../machines/registry.ts';
import { readLog } from '../log/reader.ts';
import { scenarioFromLog } from '../replay/replay.ts';
import { loadScenarioFile } from '../scenario/load.ts';
import type { Scenario } from '../scenario/schema.ts';
import { sequenceToMermaid } from '../export/mermaid.ts';
import { perfettoTrace } from '../export/perfetto.ts';
import { traceCmdReport } from '../export/traceCmd.ts';
import { statechartOf } from '../export/statechart.ts';
import { statechartToMermaid } from '../export/statechartMermaid.ts';
import { layoutStatechart } from '../export/statechartLayout.ts';
import { renderStatechart } from '../export/statechartSvg.ts';
import { svgToText } from '../export/svgTree.ts';
import { isLogFile, openLogOrScenario } from '../session/open.ts';
import { EXIT_OK } from './exitCodes.ts';

export const EXPORT_FORMATS = ['mermaid', 'perfetto', 'statechart-mermaid', 'statechart-svg', 'trace-cmd'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface ExportCliOptions {
  format: ExportFormat;
  out?: string;
  actor?: string;
}

/** Statecharts need only the model: the scenario from a log's header, or the scenario itself. */
function scenarioOf(arg: string): Scenario {
  if (isLogFile(arg)) return scenarioFromLog(readLog(arg), arg);
  return loadScenarioFile(arg).scenario;
}

function checkActor(actor: string | undefined, ids: string[]): void {
  if (actor !== undefined && !ids.includes(actor)) throw new RangeError(`--actor ${actor}: no such actor (${ids.join(', ')})`);
}

/** One machine per kind of actor, named by the first actor of that kind, or only `--actor`'s. */
function machinesOf(s: Scenario, actor: string | undefined): { machine: AnyStateMachine; actors: string[] }[] {
  const specs = actorsFor(s);
  checkActor(actor, specs.map((a) => a.id));
  const byMachine = new Map<AnyStateMachine, string[]>();
  for (const a of specs) if (actor === undefined || a.id === actor) byMachine.set(a.machine, [...(byMachine.get(a.machine) ?? []), a.id]);
  return [...byMachine].map(([machine, actors]) => ({ machine, actors }));
}

function emit(text: string, out: string | undefined, print: (line: string) => void, what: string): number {
  if (out === undefined) {
    print(text.endsWith('\n') ? text.slice(0, -1) : text);
  } else {
    writeFileSync(out, text);
    process.stderr.write(`# wrote ${what} to ${out}\n`);
  }
  return EXIT_OK;
}

export function exportCommand(arg: string, o: ExportCliOptions, print: (line: string) => void): number | Promise<number> {
  switch (o.format) {
    case 'mermaid':
    case 'perfetto': {
      const { log, file } = openLogOrScenario(arg);
      const s = scenarioFromLog(log, file);
      const actors = actorsFor(s).map((a) => a.id);
      checkActor(o.actor, actors);
      const base = { events: log.events, end: log.end, actors, ...(o.actor !== undefined ? { actor: o.actor } : {}) };
      if (o.format === 'mermaid') return emit(sequenceToMermaid({ ...base, title: `${s.name}: ${path.basename(file)}` }), o.out, print, 'a Mermaid sequence diagram');
      return emit(JSON.stringify(perfettoTrace({ ...base, title: `tdxsim ${s.name}` })) + '\n', o.out, print, 'a Perfetto trace (open it at ui.perfetto.dev)');
    }
    case 'statechart-mermaid': {
      const machines = machinesOf(scenarioOf(arg), o.actor);
      if (o.actor !== undefined) return emit(statechartToMermaid(statechartOf(machines[0]!.machine)), o.out, print, 'a Mermaid state diagram');
      // Several diagrams: a Markdown document with one fenced block each, as a README would hold them.
      const md = machines.map(({ machine, actors }) => `## ${machine.id} (${actors.join(', ')})\n\n\`\`\`mermaid\n${statechartToMermaid(statechartOf(machine))}\`\`\`\n`).join('\n');
      return emit(md, o.out, print, 'Mermaid state diagrams');
    }
    case 'statechart-svg':
      return exportSvg(arg, o, print);
    case 'trace-cmd': {
      const { log, file } = openLogOrScenario(arg);
      return emit(traceCmdReport(log, file), o.out, print, 'a trace-cmd report');
    }
  }
}

async function exportSvg(arg: string, o: ExportCliOptions, print: (line: string) => void): Promise<number> {
  const machines = machinesOf(scenarioOf(arg), o.actor);
  if (o.actor !== undefined) {
    return emit(svgToText(renderStatechart(await layoutStatechart(statechartOf(machines[0]!.machine)))), o.out, print, 'an SVG statechart');
  }
  if (o.out === undefined) throw new RangeError('--format statechart-svg draws one machine per file: pass --actor ID, or --out DIR to write one SVG per machine');
  mkdirSync(o.out, { recursive: true });
  for (const { machine } of machines) {
    const file = path.join(o.out, `${machine.id}.svg`);
    writeFileSync(file, svgToText(renderStatechart(await layoutStatechart(statechartOf(machine)))));
    process.stderr.write(`# wrote ${file}\n`);
  }
  return EXIT_OK;
}
