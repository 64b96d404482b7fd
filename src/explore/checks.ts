/**
 * Invariants as the explorer's engine checks them, using their footprints (invariants/invariant.ts):
 * - without a footprint, every delivery builds both worlds and calls `check`;
 * - a `quiescent` one is called with the worlds where nothing is in flight; elsewhere it is null at a
 *   delivery to an actor outside its `on` and runs its `fast` path (or `check`) inside it;
 * - otherwise, at a delivery to an actor outside its `on`, the verdict depends on the delivery alone, so it
 *   is decided once per distinct delivery (compiled transition) and read back after; at a delivery to an
 *   actor in `on` it runs its `fast` path (or `check` with the worlds).
 * Verdicts and their order are exactly those of calling every `check` on every delivery.
 */
import type { Message } from '../protocol/messages.ts';
import type { Model, World } from '../runtime/world.ts';
import type { DeliveryView, Invariant } from './invariants/invariant.ts';

const GENERIC = 0;
const QUIESCENT = 1;
const FOOTPRINT = 2;

/** The engine's side of a delivery being checked: what a DeliveryView reads, and the worlds on demand. */
export interface CheckedDelivery extends DeliveryView {
  /** Compiled transition of the delivery. */
  entry: number;
  receiver: number;
  /** Messages in flight after the delivery. */
  pendingAfter: number;
  /** The delivered message as a materialised world holds it (for `check`). */
  deliveredInWorld(): Message;
}

export class InvariantChecks {
  private readonly kinds: Uint8Array;
  /** Per invariant with a footprint, per actor: 1 where the delivery's verdict may read beyond it. */
  private readonly on: (Uint8Array | null)[];
  /** Per compiled transition: 0 not decided yet, 1 every delivery-local verdict holds, 2 + i: invariant i is the first to fail. */
  private local = new Uint8Array(1024);
  private readonly localDetail = new Map<number, string>();
  readonly hasGeneric: boolean;

  constructor(
    readonly model: Model,
    readonly invariants: readonly Invariant[],
  ) {
    if (invariants.length > 250) throw new RangeError(`at most 250 invariants, got ${invariants.length}`);
    this.kinds = Uint8Array.from(invariants, (i) => (i.footprint === undefined ? GENERIC : i.footprint.quiescent ? QUIESCENT : FOOTPRINT));
    this.on = invariants.map((inv) => {
      const on = inv.footprint?.on;
      return on === undefined ? null : Uint8Array.from(model.actors, (a) => (on(a.id) ? 1 : 0));
    });
    this.hasGeneric = this.kinds.includes(GENERIC);
  }

  /** The first invariant the delivery breaks, as [name, words], or null. */
  check(d: CheckedDelivery): Violated | null {
    const invs = this.invariants;
    for (let i = 0; i < invs.length; i++) {
      const inv = invs[i]!;
      let problem: string | null = null;
      switch (this.kinds[i]) {
        case GENERIC:
          problem = inv.check(this.model, d.before(), d.after(), d.deliveredInWorld());
          break;
        case QUIESCENT: {
          const on = this.on[i] ?? null;
          if (d.pendingAfter === 0) problem = inv.check(this.model, d.before(), d.after(), d.deliveredInWorld());
          else if (on !== null && on[d.receiver] === 1) {
            const fast = inv.footprint!.fast;
            problem = fast !== undefined ? fast(d) : inv.check(this.model, d.before(), d.after(), d.deliveredInWorld());
          }
          break;
        }
        default: {
          const on = this.on[i]!;
          if (on !== null && on[d.receiver] === 1) {
            const fast = inv.footprint!.fast;
            problem = fast !== undefined ? fast(d) : inv.check(this.model, d.before(), d.after(), d.deliveredInWorld());
          } else {
            const first = this.localVerdict(d);
            if (first === i) problem = this.localDetail.get(d.entry)!;
          }
        }
      }
      if (problem !== null) return { invariant: inv.name, detail: problem };
    }
    return null;
  }

  /** The first invariant whose delivery-local verdict fails on this compiled transition, or −1. */
  private localVerdict(d: CheckedDelivery): number {
    const e = d.entry;
    if (e >= this.local.length) {
      const b = new Uint8Array(Math.max(e + 1, 2 * this.local.length));
      b.set(this.local);
      this.local = b;
    }
    const v = this.local[e]!;
    if (v !== 0) return v - 2;
    let first = -1;
    const before: World = d.before();
    const after: World = d.after();
    const delivered = d.deliveredInWorld();
    for (let i = 0; i < this.invariants.length && first < 0; i++) {
      if (this.kinds[i] !== FOOTPRINT) continue;
      const on = this.on[i]!;
      if (on !== null && on[d.receiver] === 1) continue;
      const problem = this.invariants[i]!.check(this.model, before, after, delivered);
      if (problem !== null) {
        first = i;
        this.localDetail.set(e, problem);
      }
    }
    this.local[e] = first + 2;
    return first;
  }
}

export interface Violated {
  invariant: string;
  detail: string;
}
