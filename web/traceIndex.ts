/**
 * The imported trace as the page looks things up in it: the sequence view's rows (traceRows.ts), which
 * trace events sit on each step, where an event is placed, which divergence each event and step belongs
 * to, and the livelock faults. Built once from /api/trace; the events themselves come in chunks
 * (traceEvents.ts).
 */
import type { TraceDivergence, TraceInfo } from '../src/inspect/api.ts';
import { planRows, type PlanRow } from '../src/inspect/traceRows.ts';

export class TraceIndex {
  readonly info: TraceInfo;
  readonly plan: PlanRow[];
  readonly #on = new Map<number, number[]>();
  readonly #place = new Map<number, { seq: number; between: boolean }>();
  /** Trace event → the divergence whose hunk holds it. */
  readonly #divergenceOf = new Map<number, TraceDivergence>();
  /** Trace event → the divergence it is the trace end of. */
  readonly #anchorOf = new Map<number, TraceDivergence>();
  /** Step → the divergence whose model side holds it; and the divergence whose model end it is. */
  readonly #modelDivergence = new Map<number, TraceDivergence>();
  readonly #modelAnchor = new Map<number, TraceDivergence>();

  constructor(info: TraceInfo, steps: number) {
    this.info = info;
    this.plan = planRows(steps, info.placement);
    for (const [id, seq, between] of info.placement) {
      this.#place.set(id, { seq, between: between === 1 });
      if (between) continue;
      const list = this.#on.get(seq);
      if (list === undefined) this.#on.set(seq, [id]);
      else list.push(id);
    }
    for (const d of info.divergences) {
      if (!d.divergence) continue;
      for (const id of d.traceEvents) if (!this.#divergenceOf.has(id)) this.#divergenceOf.set(id, d);
      for (const seq of d.modelSteps) if (!this.#modelDivergence.has(seq)) this.#modelDivergence.set(seq, d);
      if (d.trace?.id !== null && d.trace?.id !== undefined && !this.#anchorOf.has(d.trace.id)) this.#anchorOf.set(d.trace.id, d);
      if (d.seq !== null && !this.#modelAnchor.has(d.seq)) this.#modelAnchor.set(d.seq, d);
    }
  }

  /** Trace events aligned with step `seq`, in trace order. */
  onStep(seq: number): readonly number[] {
    return this.#on.get(seq) ?? [];
  }

  /** The step an event is placed on (aligned) or after (no model partner). */
  placeOf(id: number): { seq: number; between: boolean } | null {
    return this.#place.get(id) ?? null;
  }

  divergenceOf(id: number): TraceDivergence | null {
    return this.#divergenceOf.get(id) ?? null;
  }

  anchorOf(id: number): TraceDivergence | null {
    return this.#anchorOf.get(id) ?? null;
  }

  modelDivergence(seq: number): TraceDivergence | null {
    return this.#modelDivergence.get(seq) ?? null;
  }

  modelAnchor(seq: number): TraceDivergence | null {
    return this.#modelAnchor.get(seq) ?? null;
  }

  get divergences(): TraceDivergence[] {
    return this.info.divergences.filter((d) => d.divergence);
  }

  get first(): TraceDivergence | null {
    return this.info.first === null ? null : (this.info.divergences[this.info.first] ?? null);
  }
}
