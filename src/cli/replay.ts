/** `tdxsim replay <log>`: the state of every actor at a step, re-derived from the log; `--verify` checks it all. */
import { statSync } from 'node:fs';
import { stringifyCanonical } from '../log/canonical.ts';
import { LogError } from '../log/errors.ts';
import { scanLog, tearDetail, tearNotice, type Tear } from '../log/reader.ts';
import type { EndRecord, HeaderRecord } from '../log/schema.ts';
import { readSigningKey } from '../log/signature.ts';
import { openIndexed, type OpenIndexedOptions } from '../replay/seek.ts';
import { verifyLogFile } from '../replay/verifyStream.ts';
import type { Message } from '../protocol/messages.ts';
import type { Model, World } from '../runtime/world.ts';
import { worldView } from '../runtime/worldHash.ts';
import type { Scenario } from '../scenario/schema.ts';
import { MODEL_VERSION } from '../version.ts';
import { EXIT_OK } from './exitCodes.ts';
import { formatDelivery } from '../session/format.ts';
import { formatOptionsFor } from '../session/session.ts';
import { formatActorState } from '../session/stateView.ts';

export interface ReplayCliOptions {
  to?: number;
  verify?: boolean;
  json?: boolean;
  actor?: string;
  /** Key file to check a signed log's signature with (src/log/signature.ts). */
  key?: string;
}

/** Below this size a log's index is built without a word: it takes no time worth mentioning. */
const QUIET_INDEX_BYTES = 4 << 20;

/** Notices about the checkpoint index, on stderr: always when it is not trusted, for a big log when it is (re)built. */
export function indexNotices(logPath: string, warn: (line: string) => void): OpenIndexedOptions {
  let big = false;
  try {
    big = statSync(logPath).size >= QUIET_INDEX_BYTES;
  } catch {
    // the open reports it
  }
  return { onNotice: (m) => (big || /not trusted/.test(m) ? warn(`tdxsim: ${m}`) : undefined) };
}

interface Shown {
  header: HeaderRecord;
  scenario: Scenario;
  model: Model;
  steps: number;
  end: EndRecord | null;
  signed: null | { keyId: string; checked: boolean };
  torn: Tear | null;
  world: World;
  delivered: Message | null;
  verified: boolean;
}

/**
 * A torn log (a crash mid-write) is still useful up to its last intact step: --to and the default show
 * it, after a notice on stderr. --verify refuses it, since the run it records has no end to check.
 *
 * Without --verify the step is opened from the log's checkpoint index (built on first use), so any step
 * of any log takes the same time; --verify and --key read the whole log, as a stream.
 */
export function replayCommand(logPath: string, opts: ReplayCliOptions, print: (line: string) => void, warn: (line: string) => void = (l) => process.stderr.write(l + '\n')): number {
  const key = opts.key === undefined ? undefined : readSigningKey(opts.key);
  let shown: Shown;
  if (opts.verify) {
    // A forged log is named as forged: the signature (a pass without re-execution) before re-execution.
    if (key !== undefined) for (const _ of scanLog(logPath, { allowTorn: true, key }).scan);
    const v = verifyLogFile(logPath, { allowTorn: true, ...(key !== undefined ? { key } : {}), ...(opts.to !== undefined ? { to: opts.to } : {}) });
    const log = v.log;
    if (log.torn !== null) throw new LogError('TORN_LINE', logPath, log.torn.line, `${tearDetail(log.torn)}: the log is incomplete, so it cannot be verified`);
    if (log.signed !== null && !log.signed.checked) {
      throw new LogError('SIGNATURE', logPath, log.lines, `signed, not checked: give --key FILE with the key it was signed with (key id ${log.signed.keyId})`, 'signature');
    }
    shown = { header: log.header, scenario: v.scenario, model: v.model, steps: log.steps, end: log.end, signed: log.signed, torn: null, world: v.world, delivered: v.delivered, verified: true };
  } else {
    let signed: Shown['signed'] = null;
    if (key !== undefined) {
      // The signature covers every byte: checking it is a read of the whole log (as a stream).
      const { scan } = scanLog(logPath, { allowTorn: true, key });
      for (const _ of scan);
      signed = scan.signed;
    }
    const h = openIndexed(logPath, indexNotices(logPath, warn));
    try {
      if (h.torn !== null) warn(`tdxsim: warning: ${tearNotice(logPath, h.torn)}`);
      const to = opts.to ?? h.steps;
      if (to > h.steps) throw new RangeError(`--to ${opts.to}: the log has steps 0..${h.steps}`);
      const r = h.seek(to);
      const sig = h.end?.signature;
      signed ??= sig === undefined ? null : { keyId: sig.keyId, checked: false };
      shown = { header: h.header, scenario: h.scenario, model: h.model, steps: h.steps, end: h.end, signed, torn: h.torn, world: r.world, delivered: r.delivered, verified: false };
    } finally {
      h.close();
    }
  }
  const to = opts.to ?? shown.steps;
  const view = worldView(shown.model, shown.world);
  const actors = Object.entries(view.actors).filter(([id]) => opts.actor === undefined || id === opts.actor);
  if (opts.actor !== undefined && actors.length === 0) throw new RangeError(`--actor ${opts.actor}: no such actor (${Object.keys(view.actors).join(', ')})`);
  if (opts.json) {
    print(stringifyCanonical({ step: to, verified: shown.verified, actors: Object.fromEntries(actors), pending: view.pending }));
    return EXIT_OK;
  }
  const fmt = formatOptionsFor(shown.scenario);
  const { header, end } = shown;
  if (!modelMatches(header)) print(`# warning: log written by ${header.model}; replaying with a different model version`);
  print(`# ${logPath}: scenario ${shown.scenario.name}, ${shown.steps} steps, outcome ${end ? outcomeText(end.outcome) : 'unknown (no end record)'}`);
  if (shown.signed !== null) print(`# signed with key ${shown.signed.keyId}: ${shown.signed.checked ? 'signature checked' : 'signature not checked (give --key FILE)'}`);
  // The re-derived message, not the log's record: its SPTEs and S-EPT entries are bigints again, so they decode.
  const ev = shown.delivered === null ? null : { ...shown.delivered, seq: to };
  print(ev ? `# state after step ${to}:${formatDelivery(ev, fmt).slice(5)}` : '# state before the first step');
  for (const [id, v] of actors) for (const line of formatActorState(id, v, fmt)) print(line);
  if (view.pending.length > 0) print(`# in flight: ${view.pending.map((m) => (m as { name: string; to: string }).name + ' → ' + (m as { to: string }).to).join(', ')}`);
  if (opts.verify) {
    const signedText = shown.signed === null ? '' : `; signature of key ${shown.signed.keyId} checked`;
    const scheduler = header.scheduler.kind === 'random' ? `random, seed ${header.scheduler.seed}` : header.scheduler.kind;
    print(`# verified: all ${shown.steps} events re-derived from the scenario by ${header.model} with the header's scheduler (${scheduler}), matching state hashes; hash chain intact; outcome ${outcomeText(end!.outcome)}${signedText}`);
  }
  return EXIT_OK;
}

function modelMatches(header: HeaderRecord): boolean {
  return header.model === MODEL_VERSION;
}

/** `failure (violation of sept-parent-first: …)`: a counterexample says which invariant its last step broke. */
function outcomeText(o: { status: string; reason: string | null }): string {
  return o.reason === null ? o.status : `${o.status} (${o.reason})`;
}
