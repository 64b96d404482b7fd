/**
 * A log in the formats other tools read: a Mermaid sequence diagram, a Perfetto (Chrome JSON) trace, and
 * the model's statecharts as Mermaid or SVG. `tdxsim export` and the library call these same functions.
 */
import type { AnyStateMachine } from 'xstate';
import { actorsFor } from '../../machines/registry.ts';
import { sequenceToMermaid } from '../export/mermaid.ts';
import { perfettoTrace, type TraceEvent } from '../export/perfetto.ts';
import { statechartOf } from '../export/statechart.ts';
import { layoutStatechart } from '../export/statechartLayout.ts';
import { statechartToMermaid } from '../export/statechartMermaid.ts';
import { renderStatechart } from '../export/statechartSvg.ts';
import { svgToText } from '../export/svgTree.ts';
import type { ParsedLog } from '../log/reader.ts';
import { scenarioFromLog } from '../replay/replay.ts';
import type { Scenario } from '../scenario/schema.ts';

/** Options of the sequence exports: one actor only, and the title. */
export interface SequenceExportOptions {
  /** Only this actor's messages (sent or received). */
  actor?: string;
  /** The diagram's title. @default the scenario's name */
  title?: string;
}

function checkActor(actor: string | undefined, ids: string[]): void {
  if (actor !== undefined && !ids.includes(actor)) throw new RangeError(`--actor ${actor}: no such actor (${ids.join(', ')})`);
}

function sequenceInput(log: ParsedLog, file: string, actor: string | undefined) {
  const s = scenarioFromLog(log, file);
  const actors = actorsFor(s).map((a) => a.id);
  checkActor(actor, actors);
  return { scenario: s, base: { events: log.events, end: log.end, actors, ...(actor !== undefined ? { actor } : {}) } };
}

/** The log as a Mermaid `sequenceDiagram` (text for a Markdown fence). */
export function logToMermaid(log: ParsedLog, file: string, opts: SequenceExportOptions = {}): string {
  const { scenario, base } = sequenceInput(log, file, opts.actor);
  return sequenceToMermaid({ ...base, title: opts.title ?? scenario.name });
}

/** The log as a Perfetto / Chrome trace: one thread per actor, one slice per message, flows for causes. */
export function logToPerfetto(log: ParsedLog, file: string, opts: SequenceExportOptions = {}): { traceEvents: TraceEvent[]; displayTimeUnit: 'ns' } {
  const { scenario, base } = sequenceInput(log, file, opts.actor);
  return perfettoTrace({ ...base, title: opts.title ?? `tdxsim ${scenario.name}` });
}

/** One machine per kind of actor, with the actors that run it (or only `actor`'s). */
export function machinesOf(s: Scenario, actor?: string): { machine: AnyStateMachine; actors: string[] }[] {
  const specs = actorsFor(s);
  checkActor(actor, specs.map((a) => a.id));
  const byMachine = new Map<AnyStateMachine, string[]>();
  for (const a of specs) if (actor === undefined || a.id === actor) byMachine.set(a.machine, [...(byMachine.get(a.machine) ?? []), a.id]);
  return [...byMachine].map(([machine, actors]) => ({ machine, actors }));
}

/** A machine's statechart as a Mermaid `stateDiagram-v2`. */
export function statechartMermaid(machine: AnyStateMachine): string {
  return statechartToMermaid(statechartOf(machine));
}

/** A machine's statechart as SVG text, laid out by ELK (compound states nested). */
export async function statechartSvg(machine: AnyStateMachine): Promise<string> {
  return svgToText(renderStatechart(await layoutStatechart(statechartOf(machine))));
}
