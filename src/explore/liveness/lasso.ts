/**
 * A lasso as the user gets it: the graph path nonProgress.ts chose, turned back into scheduler choices by
 * stepping the model along it (a choice is an index into the deliverable messages, which depends on
 * message ids; the graph keeps channels, which do not), checked state by state against the graph's
 * fingerprints and at the end against the loop's start (loopState.ts), and put into words: who starves,
 * on what, and what the loop repeats.
 */
import { hex } from '../../arch/hex.ts';
import type { Gprs, Message } from '../../protocol/messages.ts';
import { ModelBug } from '../../runtime/errors.ts';
import { enabledChoices, initialWorld, step } from '../../runtime/step.ts';
import type { Model, World } from '../../runtime/world.ts';
import { fingerprint } from '../fingerprint.ts';
import { stateName } from '../invariants/invariant.ts';
import { loopStateDifference } from './loopState.ts';
import type { LassoPath } from './nonProgress.ts';
import type { FrozenGraph } from './stateGraph.ts';
import type { ProgressThread } from '../progress.ts';

/** What the end record's `outcome.lasso` holds (the lead's lasso format). */
export interface Lasso {
  /** The loop is steps loopStart + 1 … the last; the state after the last equals the state after loopStart. */
  loopStart: number;
  /** The progress thread that never moves on; for "no end state is reachable", the actor that steps most in the loop. */
  starving: string;
  /** What the loop repeats, in the model's terms. */
  retries: string;
}

export interface BuiltLasso {
  choices: number[];
  lasso: Lasso;
  detail: string;
}

export const NO_END_STATE = 'no end state is reachable';

export function buildLasso(model: Model, g: FrozenGraph, path: LassoPath): BuiltLasso {
  const edges = [...path.prefix, ...path.loop];
  const n = g.actors;
  const channelOf = (m: Message) => model.indexOf.get(m.from)! * n + model.indexOf.get(m.to)!;
  let world = initialWorld(model);
  let loopStartWorld = world;
  const choices: number[] = [];
  const loop: Message[] = [];
  edges.forEach((e, i) => {
    if (i === path.prefix.length) loopStartWorld = world;
    const enabled = enabledChoices(model, world);
    const c = enabled.findIndex((m) => channelOf(m) === g.channel[e]);
    if (c < 0) throw new ModelBug(`non-progress lasso: step ${i + 1} has no deliverable message on channel ${g.channel[e]}`);
    const r = step(model, world, c, enabled);
    const fp = fingerprint(model, r.world);
    const v = g.dst[e]!;
    if ((fp.hi | 0) !== g.fpHi[v] || (fp.lo | 0) !== g.fpLo[v]) throw new ModelBug(`non-progress lasso: step ${i + 1} does not reach the state the graph recorded`);
    choices.push(c);
    if (i >= path.prefix.length) loop.push(r.delivered);
    world = r.world;
  });
  const differs = loopStateDifference(model, loopStartWorld, world);
  // Equal fingerprints of different states: a 64-bit collision, which the summary's odds describe.
  if (differs !== null) throw new ModelBug(`non-progress lasso: the loop does not return to its start (${differs}); a fingerprint collision`);

  return { choices, ...describeLoop(model, path.thread < 0 ? null : g.threads[path.thread]!, path.prefix.length, loop, loopStartWorld) };
}

/**
 * The words for a loop: `thread` starves in it (null: it is a loop no end state is reachable from),
 * `loop` is one turn's deliveries from `start`, the world after step `loopStart`. Replay re-derives them
 * to check a lasso log (src/replay/lasso.ts).
 */
export function describeLoop(model: Model, thread: ProgressThread | null, loopStart: number, loop: readonly Message[], start: World): { lasso: Lasso; detail: string } {
  const turn = `${loop.length} step${loop.length === 1 ? '' : 's'} a turn`;
  if (thread === null) {
    const actor = busiest(loop);
    const retries = repeats(actor, loop, start, model);
    return { lasso: { loopStart, starving: actor, retries }, detail: `${NO_END_STATE} after step ${loopStart}: ${retries} forever (${turn}), and every schedule from there goes on so` };
  }
  const retries = repeats(thread.id.replace(/^guest\./, 'kvm.'), loop, start, model);
  return { lasso: { loopStart, starving: thread.id, retries }, detail: `${retries} forever (${turn}); ${thread.id} ${thread.stuckOn(model, start)}` };
}

/** The receiver of most deliveries in the loop (the first of them on a tie). */
function busiest(loop: readonly Message[]): string {
  const counts = new Map<string, number>();
  for (const m of loop) counts.set(m.to, (counts.get(m.to) ?? 0) + 1);
  return [...counts].reduce((a, b) => (b[1] > a[1] ? b : a))[0];
}

const ENTRIES = new Set(['TDH.VP.ENTER', 'VMLAUNCH', 'VMRESUME']);
const EXITS = new Set(['td-exit', 'vm-exit']);

function exitLabel(m: Message): string {
  const p = m.payload as Gprs & { gpa?: bigint };
  const label = `${m.name} (${m.kind === 'td-exit' ? 'TD' : 'VM'} exit)`;
  if (m.name === 'EPT_VIOLATION') {
    const gpa = m.kind === 'td-exit' ? p.R8 : p.gpa;
    if (gpa !== undefined) return `${label} at GPA ${hex(gpa)}`;
  }
  if (m.name === 'BUSY' && p.RAX !== undefined) return `${label} RAX=${hex(p.RAX)}`;
  return label;
}

const unique = (xs: readonly string[]) => [...new Set(xs)];
const times = (k: number) => (k === 1 ? '' : ` (${k} times a turn)`);

/** What `actor` (a KVM vCPU thread, or the loop's busiest actor) does in one turn of the loop. */
function repeats(actor: string, loop: readonly Message[], at: World, model: Model): string {
  const entries = loop.filter((m) => m.from === actor && ENTRIES.has(m.name)).length;
  const exits = unique(loop.filter((m) => m.to === actor && EXITS.has(m.kind)).map(exitLabel));
  if (entries > 0 && exits.length > 0) {
    const entry = loop.find((m) => m.from === actor && ENTRIES.has(m.name))!.name;
    return `${actor} re-enters ${entry}${times(entries)} into ${exits.join(' / ')}`;
  }
  const sent = unique(loop.filter((m) => m.from === actor).map((m) => m.name));
  if (sent.length > 0) return `${actor} repeats ${sent.join(', ')}`;
  const i = model.indexOf.get(actor);
  const others = unique(loop.map((m) => m.from)).join(', ');
  const where = i === undefined ? '' : ` in ${stateName(at.snapshots[i]!.value)}`;
  return `${actor} waits${where} while ${others} repeat ${unique(loop.map((m) => m.name)).join(', ')}`;
}
