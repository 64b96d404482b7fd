/** The note the sequence view shows beside a preemption of an explored schedule. */
import { isPreemption } from '../explore/minimise.ts';
import { messageLabel } from '../export/messageLabel.ts';
import type { Message } from '../protocol/messages.ts';

/**
 * Why delivering `chosen` is a preemption (null when it is not), after a delivery that sent `sent`:
 * names the message of the thread it left, which could have been delivered instead.
 */
export function preemptionNote(enabled: readonly Message[], sent: readonly Message[], chosen: Message, seq: number): string | null {
  if (!isPreemption(enabled, sent, chosen)) return null;
  const left = enabled.find((m) => sent.includes(m))!;
  return `preemption: step ${seq - 1} sent ${messageLabel(left)} to ${left.to}, deliverable here; step ${seq} delivers to ${chosen.to} instead`;
}
