import { describe, expect, it } from 'vitest';
import { arrows, payload, runExample } from '../helpers.ts';
import { VMX_EPT_MISCONFIG_WX_VALUE, isMmioSpte, getMmioSpteGeneration } from '../../src/arch/spte.ts';
import { actorView } from '../../src/runtime/worldHash.ts';

const run = runExample('vmx-mmio');
const seq = arrows(run);

describe('vmx-mmio: the same program in a VMX guest (§6.i contrast)', () => {
  it('first touch: EPT_VIOLATION VM exit straight to KVM, MMIO SPTE 0x6 | generation | GPA, emulation at once', () => {
    expect(seq.slice(0, 6)).toEqual([
      'vmm → kvm.vcpu0 KVM_RUN',
      'kvm.vcpu0 → guest.vcpu0 VMLAUNCH',
      'guest.vcpu0 → hw.cpu0 LOAD',
      'hw.cpu0 → kvm.mmu EPT_WALK',
      'kvm.mmu → hw.cpu0 EPT_WALK_RESULT',
      'hw.cpu0 → kvm.vcpu0 EPT_VIOLATION',
    ]);
    const leaf = payload<{ newSpte: bigint }>(run, 21).newSpte;
    expect(leaf).toBe(0xfe000016n);
    expect(leaf & 0x7n).toBe(VMX_EPT_MISCONFIG_WX_VALUE);
    expect(isMmioSpte(leaf, VMX_EPT_MISCONFIG_WX_VALUE)).toBe(true);
    expect(getMmioSpteGeneration(leaf)).toBe(2);
    expect(seq.slice(22, 26)).toEqual([
      'kvm.vcpu0 → kvm.mmu MMU_UNLOCK',
      'kvm.vcpu0 → vmm KVM_EXIT_MMIO',
      'vmm → kvm.vcpu0 KVM_RUN',
      'kvm.vcpu0 → guest.vcpu0 VMRESUME',
    ]);
    expect(payload(run, 26)).toMatchObject({ emulated: { reg: 'rax', value: 0x1af41000n, ripAdvance: 2 } });
  });

  it('steady state: EPT_MISCONFIG, a lockless walk to the MMIO SPTE, and KVM emulates; never a #VE', () => {
    expect(seq.slice(26, 35)).toEqual([
      'guest.vcpu0 → hw.cpu0 STORE',
      'hw.cpu0 → kvm.mmu EPT_WALK',
      'kvm.mmu → hw.cpu0 EPT_WALK_RESULT',
      'hw.cpu0 → kvm.vcpu0 EPT_MISCONFIG',
      'kvm.vcpu0 → kvm.mmu TDP_WALK',
      'kvm.mmu → kvm.vcpu0 TDP_WALK_RESULT',
      'kvm.vcpu0 → vmm KVM_EXIT_MMIO',
      'vmm → kvm.vcpu0 KVM_RUN',
      'kvm.vcpu0 → guest.vcpu0 VMRESUME',
    ]);
    expect(seq.some((s) => s.includes('#VE') || s.includes('TDG.') || s.includes('TDH.'))).toBe(false);
    expect(seq.filter((s) => s.endsWith('EPT_VIOLATION'))).toHaveLength(1);
    expect(seq.filter((s) => s.endsWith('EPT_MISCONFIG'))).toHaveLength(2);
    expect(seq.at(-1)).toBe('hw.cpu0 → kvm.vcpu0 HLT');
    const guest = actorView(run.deliveries.at(-1)!.world, run.model.indexOf.get('guest.vcpu0')!).context as { regs: { rax: bigint; rbx: bigint } };
    expect(guest.regs).toMatchObject({ rax: 0x1af41000n, rbx: 1n });
  });
});
