/** `tdxsim replay <log>`: the state of every actor at a step, re-derived from the log; `--verify` checks it all. */
import { stringifyCanonical } from '../log/canonical.ts';
import { LogError } from '../log/errors.ts';
import { readLog, tearDetail, tearNotice } from '../log/reader.ts';
import { readSigningKey } from '../log/signature.ts';
import { replayLog } from '../replay/replay.ts';
import { worldView } from '../runtime/worldHash.ts';
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

/**
 * A torn log (a crash mid-write) is still useful up to its last intact step: --to and the default show
 * it, after a notice on stderr. --verify refuses it, since the run it records has no end to check.
 */
export function replayCommand(logPath: string, opts: ReplayCliOptions, print: (line: string) => void, warn: (line: string) => void = (l) => process.stderr.write(l + '\n')): number {
  const key = opts.key === undefined ? undefined : readSigningKey(opts.key);
  const log = readLog(logPath, { allowTorn: true, ...(key !== undefined ? { key } : {}) });
  if (log.torn !== null) {
    if (opts.verify) throw new LogError('TORN_LINE', logPath, log.torn.line, `${tearDetail(log.torn)}: the log is incomplete, so it cannot be verified`);
    warn(`tdxsim: warning: ${tearNotice(logPath, log.torn)}`);
  }
  if (opts.verify && log.signed !== null && !log.signed.checked) {
    throw new LogError('SIGNATURE', logPath, log.lines, `signed, not checked: give --key FILE with the key it was signed with (key id ${log.signed.keyId})`, 'signature');
  }
  const to = opts.to ?? log.events.length;
  const r = replayLog(log, logPath, { to, verify: !!opts.verify });
  const view = worldView(r.model, r.world);
  const actors = Object.entries(view.actors).filter(([id]) => opts.actor === undefined || id === opts.actor);
  if (opts.actor !== undefined && actors.length === 0) throw new RangeError(`--actor ${opts.actor}: no such actor (${Object.keys(view.actors).join(', ')})`);
  if (opts.json) {
    print(stringifyCanonical({ step: to, verified: r.verified, actors: Object.fromEntries(actors), pending: view.pending }));
    return EXIT_OK;
  }
  const fmt = formatOptionsFor(r.scenario);
  if (!r.modelVersionMatches) print(`# warning: log written by ${log.header.model}; replaying with a different model version`);
  print(`# ${logPath}: scenario ${r.scenario.name}, ${log.events.length} steps, outcome ${log.end ? outcomeText(log.end.outcome) : 'unknown (no end record)'}`);
  if (log.signed !== null) print(`# signed with key ${log.signed.keyId}: ${log.signed.checked ? 'signature checked' : 'signature not checked (give --key FILE)'}`);
  // The re-derived message, not the log's record: its SPTEs and S-EPT entries are bigints again, so they decode.
  const ev = r.delivered === null ? null : { ...r.delivered, seq: to };
  print(ev ? `# state after step ${to}:${formatDelivery(ev, fmt).slice(5)}` : '# state before the first step');
  for (const [id, v] of actors) for (const line of formatActorState(id, v, fmt)) print(line);
  if (view.pending.length > 0) print(`# in flight: ${view.pending.map((m) => (m as { name: string; to: string }).name + ' → ' + (m as { to: string }).to).join(', ')}`);
  if (opts.verify) {
    const signed = log.signed === null ? '' : `; signature of key ${log.signed.keyId} checked`;
    const scheduler = log.header.scheduler.kind === 'random' ? `random, seed ${log.header.scheduler.seed}` : log.header.scheduler.kind;
    print(`# verified: all ${log.events.length} events re-derived from the scenario by ${log.header.model} with the header's scheduler (${scheduler}), matching state hashes; hash chain intact; outcome ${outcomeText(log.end!.outcome)}${signed}`);
  }
  return EXIT_OK;
}

/** `failure (violation of sept-parent-first: …)`: a counterexample says which invariant its last step broke. */
function outcomeText(o: { status: string; reason: string | null }): string {
  return o.reason === null ? o.status : `${o.status} (${o.reason})`;
}
