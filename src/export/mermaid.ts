/**
 * A log as a Mermaid `sequenceDiagram`, pasteable into Markdown: one participant per actor (in the
 * model's top-down order: guest, CPU, TDX module, KVM, VMM), one arrow per delivered message labelled
 * `<step> <architectural name>`. Replies (`…_RESULT`, TDCALL returns) are dashed. A failed run ends with a
 * note naming the failure. Steps are numbered in the label rather than with `autonumber`, so a diagram
 * filtered to one actor still shows the log's own step numbers.
 */
import type { EventRecord, EndRecord } from '../log/schema.ts';
import { messageLabel } from './messageLabel.ts';
import { mermaidId, mermaidText } from './mermaidText.ts';

export interface SequenceInput {
  events: readonly EventRecord[];
  end: EndRecord | null;
  /** Actor ids in the model's order; actors that appear only in events are appended. */
  actors: readonly string[];
  /** Keep only the messages this actor sends or receives. */
  actor?: string;
  title?: string;
}

export function isReply(e: { kind: string; name: string }): boolean {
  return e.kind.endsWith('-return') || e.name.endsWith('_RESULT');
}

export function sequenceToMermaid(input: SequenceInput): string {
  const events = input.actor === undefined ? input.events : input.events.filter((e) => e.from === input.actor || e.to === input.actor);
  const used = new Set(events.flatMap((e) => [e.from, e.to]));
  const actors = [...input.actors, ...[...used].filter((a) => !input.actors.includes(a)).sort()].filter((a) => used.has(a) || a === input.actor);
  const lines = ['sequenceDiagram'];
  if (input.title) lines.push(`  title ${mermaidText(input.title)}`);
  for (const a of actors) lines.push(`  participant ${mermaidId(a)} as ${mermaidText(a)}`);
  for (const e of events) {
    lines.push(`  ${mermaidId(e.from)}${isReply(e) ? '-->>' : '->>'}${mermaidId(e.to)}: ${mermaidText(`${e.seq} ${messageLabel(e)}`)}`);
  }
  const outcome = input.end?.outcome;
  if (outcome && outcome.status === 'failure' && actors.length > 0) {
    const failures = (outcome as { failures?: { actor?: string; seq?: number }[] }).failures ?? [];
    const at = failures.find((f) => typeof f.actor === 'string' && actors.includes(f.actor))?.actor ?? actors[0]!;
    lines.push(`  Note over ${mermaidId(at)}: ${mermaidText(`failure: ${outcome.reason ?? 'unknown'}`)}`);
  }
  return lines.join('\n') + '\n';
}
