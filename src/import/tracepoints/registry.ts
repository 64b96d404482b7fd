/**
 * Which payload parser reads which event. Events without one are kept as `unknown` (and counted); a known
 * event whose payload fits none of its layouts is malformed, which the caller reports with file and line.
 */
import type { DataOf, TraceEventData, TraceEventName } from '../traceEvent.ts';
import type { Tracepoint } from './tracepoint.ts';
import { kvmEntry } from './kvmEntry.ts';
import { kvmExit } from './kvmExit.ts';
import { kvmPageFault } from './kvmPageFault.ts';
import { kvmUserspaceExit } from './kvmUserspaceExit.ts';
import { kvmFastMmio, kvmMmio } from './kvmMmio.ts';
import { kvmPio } from './kvmPio.ts';
import { kvmHypercall } from './kvmHypercall.ts';
import { kvmSetMemAttributes } from './memAttributes.ts';
import { checkMmioSpte, fastPageFault, handleMmioPageFault, kvmMmuSetSpte, kvmMmuSplitHugePage, kvmMmuSpteRequested, kvmTdpMmuSpteChanged, markMmioSpte } from './kvmMmu.ts';
import { formatPrintk, parsePrintk } from './tdxPrintk.ts';

type AnyTracepoint = { [N in TraceEventName]: Tracepoint<N> }[TraceEventName];

const TRACEPOINTS: readonly AnyTracepoint[] = [
  kvmEntry,
  kvmExit,
  kvmPageFault,
  kvmUserspaceExit,
  kvmMmio,
  kvmFastMmio,
  kvmPio,
  kvmHypercall,
  kvmSetMemAttributes,
  kvmTdpMmuSpteChanged,
  kvmMmuSetSpte,
  kvmMmuSpteRequested,
  markMmioSpte,
  handleMmioPageFault,
  fastPageFault,
  checkMmioSpte,
  kvmMmuSplitHugePage,
];

const BY_EVENT: ReadonlyMap<string, AnyTracepoint> = new Map(TRACEPOINTS.map((t) => [t.event, t]));

/** Events whose payload is a kernel message (printk:console, a dmesg line). */
export const PRINTK_EVENTS: ReadonlySet<string> = new Set(['console', 'dmesg']);

export function isKnownEvent(event: string): boolean {
  return BY_EVENT.has(event) || PRINTK_EVENTS.has(event);
}

/** The decoded payload; `unknown` for an event no parser claims; null when a known event's payload is malformed. */
export function parsePayload(event: string, payload: string): TraceEventData | null {
  if (PRINTK_EVENTS.has(event)) return parsePrintk(payload);
  const tp = BY_EVENT.get(event);
  if (tp === undefined) return { name: 'unknown', event, payload };
  return tp.parse(payload);
}

/** The event name and payload the kernel prints for `data` (newest layout). */
export function formatPayload(data: TraceEventData): { event: string; payload: string } {
  switch (data.name) {
    case 'tdx_seamcall_error':
    case 'tdx_pending_access':
    case 'printk':
      return { event: 'console', payload: formatPrintk(data) };
    case 'unknown':
      return { event: data.event, payload: data.payload };
    default: {
      const tp = BY_EVENT.get(data.name) as Tracepoint<typeof data.name> | undefined;
      if (tp === undefined) throw new Error(`model bug: no tracepoint formats ${data.name}`);
      return { event: tp.event, payload: tp.format(data as DataOf<typeof data.name>) };
    }
  }
}
