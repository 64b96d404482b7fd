/**
 * The view in the URL's hash, so it can be shared: `#step=27`, plus `actor=` when an actor is pinned and
 * `q=` for the filter. Written with replaceState: stepping through a log does not fill the back button.
 */
export interface ViewHash {
  step: number | null;
  actor: string | null;
  q: string;
}

export function readViewHash(): ViewHash {
  const p = new URLSearchParams(location.hash.replace(/^#/, ''));
  const step = p.get('step');
  return { step: step !== null && /^\d+$/.test(step) ? Number(step) : null, actor: p.get('actor'), q: p.get('q') ?? '' };
}

export function writeViewHash(v: { step: number; actor: string | null; q: string }): void {
  const p = new URLSearchParams();
  p.set('step', String(v.step));
  if (v.actor) p.set('actor', v.actor);
  if (v.q) p.set('q', v.q);
  const hash = '#' + p.toString();
  if (location.hash !== hash) history.replaceState(null, '', hash);
}
