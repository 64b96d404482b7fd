/** Two vCPUs doing MMIO to the same device page: their fault paths race on the same SPTEs. */
import { parseScenarioObject } from '../src/scenario/load.ts';

export const twoVcpuMmio = (type: 'tdx' | 'vmx') => {
  const shared = type === 'tdx' ? 0x800000000000n : 0n;
  const at = (off: bigint) => '0x' + (shared | 0xfe000000n | off).toString(16);
  return parseScenarioObject({
    name: `two-vcpu-mmio-${type}`,
    vm: { type, gpaw: 48 },
    memslots: [{ gpa: '0x0', size: '0x80000000', guestMemfd: type === 'tdx' }],
    devices: [{ name: 'regs', kind: 'mmio-regs', gpa: '0xfe000000', size: '0x1000', registers: { '0x0': '0x1af41000' } }],
    vcpus: [
      { program: [{ op: 'load', gpa: at(0n), size: 4, reg: 'rax' }, { op: 'store', gpa: at(8n), size: 4, value: '0x11' }, { op: 'hlt' }] },
      { program: [{ op: 'load', gpa: at(0n), size: 4, reg: 'rbx' }, { op: 'store', gpa: at(0xcn), size: 4, value: '0x22' }, { op: 'hlt' }] },
    ],
  });
};
