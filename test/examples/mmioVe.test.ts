import { describe, expect, it } from 'vitest';
import { arrows, payload, runExample } from '../helpers.ts';
import { SHADOW_NONPRESENT_VALUE, VMX_EPT_SUPPRESS_VE_BIT, isMmioSpte, getMmioSpteGeneration, TDX_SHADOW_MMIO_VALUE } from '../../src/arch/spte.ts';
import { EXIT_REASON_EPT_VIOLATION, EXIT_REASON_TDCALL } from '../../src/arch/vmx.ts';
import { TDVMCALL_VE_REQUEST_MMIO, TDVMCALL_EXPOSE_REGS_MASK } from '../../src/arch/tdcall.ts';
import { KVM_EXIT_MMIO } from '../../src/arch/kvmApi.ts';
import { actorView } from '../../src/runtime/worldHash.ts';

const run = runExample('mmio-ve');
const seq = arrows(run);
// The TD build (§5b.3) comes first; the MMIO story starts at the VMM's first KVM_RUN.
const B = seq.indexOf('vmm → kvm.vcpu0 KVM_RUN');
/** Step numbers below count from the first KVM_RUN; kvm_mmu_faultin_pfn's FAULTIN pair follows the TD exit at 10. */
const at = (n: number) => B + n;

describe('mmio-ve: a TD guest reads and writes an MMIO register (§6.i)', () => {
  it('first touch: the shared-EPT walk hits SHADOW_NONPRESENT_VALUE and the TD exits with EPT_VIOLATION', () => {
    expect(seq.slice(at(0), at(10))).toEqual([
      'vmm → kvm.vcpu0 KVM_RUN',
      'kvm.vcpu0 → tdx TDH.VP.ENTER',
      'tdx → tdx ENTER_EPOCH',
      // The vCPU's epoch (0) is not the TD's (1): the module flushes the TD's translations on the LP first (§5c.2 step 3).
      'tdx → hw.cpu0 INVEPT',
      'hw.cpu0 → guest.vcpu0 VMLAUNCH',
      'guest.vcpu0 → hw.cpu0 LOAD',
      'hw.cpu0 → kvm.mmu EPT_WALK',
      'kvm.mmu → hw.cpu0 EPT_WALK_RESULT',
      'hw.cpu0 → tdx EPT_VIOLATION',
      'tdx → kvm.vcpu0 EPT_VIOLATION',
    ]);
    // Single-context, for the TD's EPTP: the S-EPT root 0x100004000 with the 4-level, write-back EPTP controls.
    expect(payload(run, at(4))).toMatchObject({ type: 1, eptp: 0x10000401en, then: { name: 'VMLAUNCH' } });
    const walk = payload<{ ept: string; path: { spte: bigint }[] }>(run, at(8));
    expect(walk.ept).toBe('shared');
    expect(walk.path.at(-1)!.spte).toBe(SHADOW_NONPRESENT_VALUE);
    const tdExit = payload<{ RAX: bigint; RCX: bigint; RDX: bigint; R8: bigint }>(run, at(10));
    // Status SUCCESS | exit reason 48; the module cleared qualification bits 12:7 and GPA bits 11:0.
    expect(tdExit.RAX).toBe(BigInt(EXIT_REASON_EPT_VIOLATION));
    expect(tdExit.RCX).toBe(0x1n);
    expect(tdExit.RDX).toBe(0n);
    expect(tdExit.R8).toBe(0x8000fe000000n);
  });

  it('KVM maps the direct root under read mmu_lock and installs the MMIO SPTE 0 | generation | GPA, bit 63 clear', () => {
    expect(seq.slice(at(10), at(28))).toEqual([
      // fault->mmu_seq first (§6.ii A.4–A.5), then the attribute and the backing.
      'kvm.vcpu0 → kvm.mmu MMU_INVALIDATE_SEQ_READ',
      'kvm.mmu → kvm.vcpu0 MMU_INVALIDATE_SEQ',
      'kvm.vcpu0 → kvm.mmu FAULTIN',
      'kvm.mmu → kvm.vcpu0 FAULTIN_RESULT',
      'kvm.vcpu0 → kvm.mmu MMU_LOCK_READ',
      'kvm.mmu → kvm.vcpu0 MMU_LOCK_ACQUIRED',
      'kvm.vcpu0 → kvm.mmu TDP_WALK',
      'kvm.mmu → kvm.vcpu0 TDP_WALK_RESULT',
      ...Array(4).fill(['kvm.vcpu0 → kvm.mmu SPTE_CMPXCHG', 'kvm.mmu → kvm.vcpu0 SPTE_CMPXCHG_RESULT']).flat(),
      'kvm.vcpu0 → kvm.mmu MMU_UNLOCK',
      'kvm.vcpu0 → tdx TDH.VP.ENTER',
    ]);
    const leaf = payload<{ pgLevel: number; oldSpte: bigint; newSpte: bigint; root: string }>(run, at(25));
    expect(leaf.root).toBe('direct');
    expect(leaf.pgLevel).toBe(1);
    expect(leaf.oldSpte).toBe(SHADOW_NONPRESENT_VALUE);
    expect(leaf.newSpte).toBe(0x8000fe000008n);
    expect(leaf.newSpte & VMX_EPT_SUPPRESS_VE_BIT).toBe(0n);
    expect(isMmioSpte(leaf.newSpte, TDX_SHADOW_MMIO_VALUE)).toBe(true);
    expect(getMmioSpteGeneration(leaf.newSpte)).toBe(1);
    // Non-leaf levels: MMU-present, RWX, accessed, suppress-#VE, pointing at the vCPU's cache pages.
    expect(payload<{ newSpte: bigint }>(run, at(19)).newSpte).toBe(0x8000000181000907n);
    const kvm = actorView(run.deliveries[at(27)]!.world, run.model.indexOf.get('kvm.vcpu0')!).context as { lastFault: { ret: string; emulation: string } };
    expect(kvm.lastFault).toMatchObject({ ret: 'RET_PF_EMULATE', emulation: 'X86EMUL_RETRY_INSTR' });
  });

  it('the retry becomes a #VE with no exit, and the handler asks for emulation with TDG.VP.VMCALL<#VE.RequestMMIO>', () => {
    expect(seq.slice(at(29), at(47))).toEqual([
      'tdx → guest.vcpu0 VMRESUME',
      'guest.vcpu0 → hw.cpu0 LOAD',
      'hw.cpu0 → kvm.mmu EPT_WALK',
      'kvm.mmu → hw.cpu0 EPT_WALK_RESULT',
      'hw.cpu0 → guest.vcpu0 #VE',
      // A TDCALL is an instruction: the CPU takes it from the guest and exits to the module with it.
      'guest.vcpu0 → hw.cpu0 TDG.VP.VEINFO.GET',
      'hw.cpu0 → tdx TDG.VP.VEINFO.GET',
      'tdx → hw.cpu0 VE_INFO_GET',
      'hw.cpu0 → tdx VE_INFO',
      'tdx → guest.vcpu0 TDG.VP.VEINFO.GET',
      'guest.vcpu0 → hw.cpu0 TDG.VP.VMCALL<#VE.RequestMMIO>',
      'hw.cpu0 → tdx TDG.VP.VMCALL<#VE.RequestMMIO>',
      'tdx → kvm.vcpu0 TDCALL',
      'kvm.vcpu0 → vmm KVM_EXIT_MMIO',
      'vmm → kvm.vcpu0 KVM_RUN',
      'kvm.vcpu0 → tdx TDH.VP.ENTER',
      'tdx → tdx ENTER_EPOCH',
      'tdx → guest.vcpu0 VMRESUME',
    ]);
    expect(payload(run, at(34))).toMatchObject({ vector: 20 });
    expect(payload(run, at(39))).toMatchObject({ RAX: 0n, RCX: 48n, RDX: 0x181n, R9: 0x8000fe000000n });
    expect(payload(run, at(41))).toMatchObject({ RCX: TDVMCALL_EXPOSE_REGS_MASK, R10: 0n, R11: BigInt(TDVMCALL_VE_REQUEST_MMIO), R12: 4n, R13: 0n, R14: 0x8000fe000000n });
    expect(payload(run, at(42))).toMatchObject({ RAX: BigInt(EXIT_REASON_TDCALL), R11: 48n });
    expect(payload(run, at(43))).toMatchObject({ exit_reason: KVM_EXIT_MMIO, phys_addr: 0xfe000000n, len: 4, is_write: 0 });
    expect(payload(run, at(45))).toMatchObject({ R10: 0n, R11: 0x1af41000n });
  });

  it('VEINFO.GET clears the valid word the CPU set when it delivered the #VE', () => {
    const hw = run.model.indexOf.get('hw.cpu0')!;
    const valid = (s: number) => (actorView(run.deliveries[s - 1]!.world, hw).context as { veInfo: { valid: number } }).veInfo.valid;
    expect(valid(at(35))).toBe(0xffffffff);
    expect(valid(at(37))).toBe(0);
  });

  it('later accesses to the same page take the #VE at once; the guest ends with the values the device returned', () => {
    expect(seq.filter((s) => s.endsWith('#VE'))).toHaveLength(3);
    expect(seq.filter((s) => s === 'hw.cpu0 → tdx EPT_VIOLATION')).toHaveLength(1);
    expect(seq.at(-2)).toBe('hw.cpu0 → tdx TDG.VP.VMCALL<Instruction.HLT>');
    const guest = actorView(run.deliveries.at(-1)!.world, run.model.indexOf.get('guest.vcpu0')!).context as { regs: { rax: bigint; rbx: bigint } };
    expect(guest.regs.rax).toBe(0x1af41000n);
    expect(guest.regs.rbx).toBe(1n);
    expect(B).toBe(63);
    expect(run.outcome).toMatchObject({ status: 'ok', steps: 147 });
  });
});
