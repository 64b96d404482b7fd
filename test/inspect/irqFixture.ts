/**
 * A small TD run with both views of the state panel's tables in it (src/inspect/stateTables.ts): vCPU 1
 * decrypts a page of the guest's direct map (its PTE gains the shared bit), then wakes vCPU 0 from
 * tdx_safe_halt with an IPI (RESCHEDULE_VECTOR 0xfd).
 */
import { headerFor, modelFor, recordRun } from '../../src/session/session.ts';
import { parseScenarioText } from '../../src/scenario/load.ts';
import { MemoryLogWriter } from '../../src/log/writer.ts';
import { parseLogText } from '../../src/log/reader.ts';
import { fifoScheduler } from '../../src/runtime/scheduler/fifo.ts';

export const IPI_AFTER_DECRYPT = `name: ipi-after-decrypt
description: vCPU 1 decrypts a page of the direct map, then wakes vCPU 0 from tdx_safe_halt with an IPI
vm: { type: tdx, gpaw: 48 }
memslots:
  - { gpa: 0x0, size: 0x80000000, guestMemfd: true }
image:
  - { gpa: 0x300000, words: {} }
guestKernel:
  directMap:
    - { gpa: 0x300000, size: 0x2000 }
vcpus:
  - program:
      - { op: cli }
      - { op: hlt, wait: true }
  - program:
      - { op: setMemoryDecrypted, va: 0xffff888000301000, pages: 1 }
      - { op: ipi, to: 0, vector: 0xfd }
`;

export function ipiAfterDecryptLog() {
  const file = 'ipi-after-decrypt.log.jsonl';
  const s = parseScenarioText(IPI_AFTER_DECRYPT, 'ipi-after-decrypt.yaml');
  const scheduler = fifoScheduler();
  const writer = MemoryLogWriter.open(headerFor(s, null, scheduler.descriptor), file);
  recordRun(modelFor(s), writer, { scheduler });
  return { log: parseLogText(writer.text(), file), file };
}
