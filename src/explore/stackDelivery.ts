/**
 * The delivery a depth-first engine is checking, as checks.ts and the invariants' fast paths read it, over
 * the engine's flat stack (flatStack.ts): interned state ids straight from the child frame, the worlds
 * before and after built only when a `check` asks for them, and at most once per delivery. One object per
 * search, moved to each delivery with `at`; both engines (depthFirst.ts, preemptionBounded.ts) use it.
 */
import type { Message } from '../protocol/messages.ts';
import type { Model, World } from '../runtime/world.ts';
import type { AnyMachineSnapshot } from 'xstate';
import type { CheckedDelivery } from './checks.ts';
import type { CompiledModel } from './compiledModel.ts';
import type { FlatStack } from './flatStack.ts';

export class StackDelivery implements CheckedDelivery {
  readonly model: Model;
  readonly ids: object;
  entry = 0;
  receiver = 0;
  pendingAfter = 0;
  delivered: Message;
  private frame = 0;
  private child = 0;
  private sends = 0;
  private beforeW: World | null = null;
  private afterW: World | null = null;

  /** `base`: the depth of the stack's frame 0 from the initial world (the seq of its world). */
  constructor(
    private readonly cm: CompiledModel,
    private readonly S: FlatStack,
    private readonly base: number,
  ) {
    this.model = cm.model;
    this.ids = cm;
    this.delivered = cm.messages[0] ?? (null as unknown as Message);
  }

  /** Now the delivery of frame `frame` whose child sits at `child` in the stack, by compiled transition `entry`. */
  at(frame: number, child: number, entry: number): void {
    const cm = this.cm;
    const S = this.S;
    this.frame = frame;
    this.child = child;
    this.entry = entry;
    this.sends = cm.sendsOf(entry);
    this.receiver = cm.receiverOf(S.childMsg);
    this.pendingAfter = S.mem[child + cm.n]!;
    this.delivered = cm.messages[S.childMsg]!;
    this.beforeW = null;
    this.afterW = null;
  }

  stateId(i: number): number {
    return this.S.mem[this.child + i]!;
  }

  snapshot(i: number): AnyMachineSnapshot {
    return this.cm.snapshots[this.S.mem[this.child + i]!]!;
  }

  before(): World {
    return (this.beforeW ??= this.S.world(this.frame));
  }

  after(): World {
    return (this.afterW ??= this.S.worldAt(this.child, this.base + this.frame + 1, { world: this.before(), removed: this.S.childPos, sent: this.sends }));
  }

  deliveredInWorld(): Message {
    return this.before().pending[this.S.childPos]!;
  }
}
