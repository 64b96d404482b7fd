/** Writing (possibly doctored) logs for the inspector tests: every line re-sealed, so only the content is wrong. */
import { GENESIS, sealRecord } from '../../src/log/hashChain.ts';
import type { ParsedLog } from '../../src/log/reader.ts';

export function logText(log: ParsedLog, edit: (record: Record<string, unknown>, index: number) => Record<string, unknown> = (r) => r): string {
  const records = [log.header, ...log.events, ...(log.end ? [log.end] : [])];
  let prev = GENESIS;
  const lines: string[] = [];
  records.forEach((r, i) => {
    const { hash: _drop, ...body } = edit({ ...(r as Record<string, unknown>) }, i) as Record<string, unknown> & { hash?: string };
    const sealed = sealRecord(prev, body);
    prev = sealed.hash;
    lines.push(sealed.line);
  });
  return lines.join('\n') + '\n';
}
