/**
 * The view in the URL's hash, so it can be shared: `#step=27`, plus `actor=` when an actor is pinned,
 * `q=` for the filter, `mark=` for the step marked for a diff, `trace=` for the trace event selected
 * beside an imported trace's run, and `log=` for a steered log (`s1`; the log named on the command line
 * is the default). Written with replaceState: stepping through a log does not fill the back button.
 */
export interface ViewHash {
  step: number | null;
  actor: string | null;
  q: string;
  mark: number | null;
  log: string;
  trace: number | null;
}

type ViewHashIn = { step: number; actor: string | null; q: string; mark?: number | null; log?: string; trace?: number | null };

const int = (v: string | null) => (v !== null && /^\d+$/.test(v) ? Number(v) : null);

export function readViewHash(): ViewHash {
  const p = new URLSearchParams(location.hash.replace(/^#/, ''));
  return { step: int(p.get('step')), actor: p.get('actor'), q: p.get('q') ?? '', mark: int(p.get('mark')), log: p.get('log') ?? 'main', trace: int(p.get('trace')) };
}

export function viewHashText(v: ViewHashIn): string {
  const p = new URLSearchParams();
  if (v.log && v.log !== 'main') p.set('log', v.log);
  p.set('step', String(v.step));
  if (v.actor) p.set('actor', v.actor);
  if (v.q) p.set('q', v.q);
  if (v.mark !== null && v.mark !== undefined) p.set('mark', String(v.mark));
  if (v.trace !== null && v.trace !== undefined) p.set('trace', String(v.trace));
  return '#' + p.toString();
}

export function writeViewHash(v: ViewHashIn): void {
  const hash = viewHashText(v);
  if (location.hash !== hash) history.replaceState(null, '', hash);
}
