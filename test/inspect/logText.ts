/** Writing (possibly doctored) logs for the inspector tests: every line re-sealed, so only the content is wrong. */
import type { ParsedLog } from '../../src/log/reader.ts';
import type { LogRecord } from '../../src/log/schema.ts';
import { encodeLog } from '../../src/log/writer.ts';

export function logText(log: ParsedLog, edit: (record: Record<string, unknown>, index: number) => Record<string, unknown> = (r) => r): string {
  const records = [log.header, ...log.events, ...(log.end ? [log.end] : [])];
  return encodeLog(records.map((r, i) => edit({ ...(r as Record<string, unknown>) }, i) as unknown as LogRecord));
}
