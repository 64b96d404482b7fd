/**
 * What the S-EPT invariants look at when KVM sends a memory SEAMCALL: the module's memory before the call
 * and the walk to the entry the call names (RCX = GPA | TDX level, §0.2; PAGE.ADD's RCX is a 4K GPA).
 */
import { walkSept, type SeptSlot } from '../../../machines/tdxModule/septTree.ts';
import type { TdxModuleContext } from '../../../machines/tdxModule/tdxModule.ts';
import type { Gprs, Message } from '../../protocol/messages.ts';
import type { Model, World } from '../../runtime/world.ts';
import { contextOf } from './invariant.ts';

export interface SeptCall {
  tdx: TdxModuleContext;
  gpa: bigint;
  level: number;
  path: SeptSlot[];
  /** The walk got down to `level`; otherwise it stopped above it, at the last slot of `path`. */
  reached: boolean;
}

/** The call `m` if it is one of `calls` to the TDX module of a TD that has an S-EPT root; null otherwise. */
export function septCall(model: Model, before: World, m: Message, calls: ReadonlySet<string>): SeptCall | null {
  if (m.to !== 'tdx' || !calls.has(m.name)) return null;
  const tdx = contextOf<TdxModuleContext>(model, before, 'tdx');
  if (tdx.mem.septRoot === null) return null;
  const rcx = (m.payload as Gprs).RCX!;
  const level = m.name === 'TDH.MEM.PAGE.ADD' ? 0 : Number(rcx & 7n);
  const gpa = rcx & ~0xfffn;
  return { tdx, gpa, level, ...walkSept(tdx.mem.sept, tdx.mem.septRoot, tdx.mem.topLevel, gpa, level) };
}
