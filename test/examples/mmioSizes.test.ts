/**
 * examples/mmio-sizes: MMIO of every size through #VE and TDG.VP.VMCALL<#VE.RequestMMIO>: R12 is the
 * access size, KVM_EXIT_MMIO's len the same, a read's value comes back in R11 and lands in the register as
 * MOV writes it; every value the guest reads is checked in the guest.
 */
import { describe, expect, it } from 'vitest';
import { runExample, type RecordedRun } from '../helpers.ts';
import { KVM_EXIT_MMIO } from '../../src/arch/kvmApi.ts';
import { TDVMCALL_VE_REQUEST_MMIO } from '../../src/arch/tdcall.ts';

type P = Record<string, bigint | number>;
const all = (r: RecordedRun, name: string, from?: string) => r.deliveries.filter((d) => d.message.name === name && (from === undefined || d.message.from === from)).map((d) => d.message.payload as P);

describe('examples/mmio-sizes', () => {
  const r = runExample('mmio-sizes');
  it('every check in the guest holds', () => {
    expect(r.outcome.status).toBe('ok');
    expect(r.outcome.failures).toEqual([]);
  });
  it('only the first access to the page exits (EPT violation → MMIO SPTE); the other eight are a #VE without an exit', () => {
    expect(r.deliveries.filter((d) => d.message.kind === 'td-exit' && d.message.name === 'EPT_VIOLATION')).toHaveLength(1);
    expect(r.deliveries.filter((d) => d.message.name === '#VE')).toHaveLength(9);
  });
  it('each access is one RequestMMIO with R12 = its size and R13 its direction', () => {
    const calls = all(r, 'TDG.VP.VMCALL<#VE.RequestMMIO>', 'guest.vcpu0').map((p) => [p.R11, p.R12, p.R13, p.R14, p.R15]);
    const S = 1n << 47n;
    const v = BigInt(TDVMCALL_VE_REQUEST_MMIO);
    expect(calls).toEqual([
      [v, 1n, 1n, S | 0xfe000000n, 0xabn],
      [v, 1n, 0n, S | 0xfe000000n, 0n],
      [v, 2n, 1n, S | 0xfe000008n, 0xabcdn],
      [v, 2n, 0n, S | 0xfe000008n, 0n],
      [v, 4n, 1n, S | 0xfe000010n, 0xdeadbeefn],
      [v, 4n, 0n, S | 0xfe000010n, 0n],
      [v, 8n, 1n, S | 0xfe000018n, 0x1122334455667788n],
      [v, 8n, 0n, S | 0xfe000018n, 0n],
      [v, 2n, 0n, S | 0xfe000020n, 0n],
    ]);
  });
  it('KVM_EXIT_MMIO carries the GPA without the shared bit, len = the size, the written bytes', () => {
    expect(all(r, 'KVM_EXIT_MMIO').map((p) => [p.exit_reason, p.phys_addr, p.len, p.is_write, p.data])).toEqual([
      [KVM_EXIT_MMIO, 0xfe000000n, 1, 1, 0xabn],
      [KVM_EXIT_MMIO, 0xfe000000n, 1, 0, 0n],
      [KVM_EXIT_MMIO, 0xfe000008n, 2, 1, 0xabcdn],
      [KVM_EXIT_MMIO, 0xfe000008n, 2, 0, 0n],
      [KVM_EXIT_MMIO, 0xfe000010n, 4, 1, 0xdeadbeefn],
      [KVM_EXIT_MMIO, 0xfe000010n, 4, 0, 0n],
      [KVM_EXIT_MMIO, 0xfe000018n, 8, 1, 0x1122334455667788n],
      [KVM_EXIT_MMIO, 0xfe000018n, 8, 0, 0n],
      [KVM_EXIT_MMIO, 0xfe000020n, 2, 0, 0n],
    ]);
  });
  it('reads complete into R11 truncated to the size; R10 stays SUCCESS', () => {
    const reads = r.deliveries
      .filter((d) => d.message.name === 'KVM_RUN' && (d.message.payload as { mmioData: bigint | null }).mmioData !== null)
      .map((d) => (d.message.payload as { mmioData: bigint }).mmioData);
    expect(reads).toEqual([0xabn, 0xabcdn, 0xdeadbeefn, 0x1122334455667788n, 0xffffn]);
    const returns = r.deliveries
      .filter((d) => d.message.name === 'VMRESUME' && (d.message.payload as { tdcallReturn: P | null }).tdcallReturn?.R11 !== undefined)
      .map((d) => (d.message.payload as { tdcallReturn: P }).tdcallReturn.R11);
    expect(returns).toEqual([0xabn, 0xabcdn, 0xdeadbeefn, 0x1122334455667788n, 0xffffn]);
  });
});
