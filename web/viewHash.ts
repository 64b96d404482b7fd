/**
 * The view in the URL's hash, so it can be shared: `#step=27`, plus `actor=` when an actor is pinned,
 * `q=` for the filter, `mark=` for the step marked for a diff, and `log=` for a steered log (`s1`; the
 * log named on the command line is the default). Written with replaceState: stepping through a log does
 * not fill the back button.
 */
export interface ViewHash {
  step: number | null;
  actor: string | null;
  q: string;
  mark: number | null;
  log: string;
}

const int = (v: string | null) => (v !== null && /^\d+$/.test(v) ? Number(v) : null);

export function readViewHash(): ViewHash {
  const p = new URLSearchParams(location.hash.replace(/^#/, ''));
  return { step: int(p.get('step')), actor: p.get('actor'), q: p.get('q') ?? '', mark: int(p.get('mark')), log: p.get('log') ?? 'main' };
}

export function viewHashText(v: { step: number; actor: string | null; q: string; mark?: number | null; log?: string }): string {
  const p = new URLSearchParams();
  if (v.log && v.log !== 'main') p.set('log', v.log);
  p.set('step', String(v.step));
  if (v.actor) p.set('actor', v.actor);
  if (v.q) p.set('q', v.q);
  if (v.mark !== null && v.mark !== undefined) p.set('mark', String(v.mark));
  return '#' + p.toString();
}

export function writeViewHash(v: { step: number; actor: string | null; q: string; mark?: number | null; log?: string }): void {
  const hash = viewHashText(v);
  if (location.hash !== hash) history.replaceState(null, '', hash);
}
