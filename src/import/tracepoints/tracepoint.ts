/** A tracepoint the importer reads and the exporter writes: its TP_printk layouts, both ways. */
import type { DataOf, TraceEventName } from '../traceEvent.ts';

export interface Tracepoint<N extends TraceEventName> {
  /** The event name as ftrace prints it. */
  event: string;
  /** The payload decoded, trying each historical layout; null when it matches none. */
  parse(payload: string): DataOf<N> | null;
  /** The payload as the newest layout prints it. */
  format(data: DataOf<N>): string;
}
