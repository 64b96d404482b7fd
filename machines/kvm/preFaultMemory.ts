/**
 * KVM_PRE_FAULT_MEMORY on a vCPU fd (virt/kvm/kvm_main.c kvm_vcpu_pre_fault_memory,
 * arch/x86/kvm/mmu/mmu.c kvm_arch_vcpu_pre_fault_memory and kvm_tdp_map_page), run by the vCPU's thread
 * while it is out of KVM_RUN (the ioctl holds vcpu->mutex, so userspace issues it on a vCPU it holds).
 *
 * Before anything: flags must be 0, gpa and size page-aligned and the range must not wrap or be empty
 * (-EINVAL). Then one page at a time, each a pass of kvm_arch_vcpu_pre_fault_memory:
 * - kvm->arch.pre_fault_allowed, which tdx_td_finalize sets once the TD is RUNNABLE: before that -EOPNOTSUPP
 *   (the image goes in with KVM_TDX_INIT_MEM_REGION, not with faults);
 * - a GPA with the shared bit is an alias of a memslot GFN that userspace never registered: -EINVAL;
 * - the GFN's attribute (kvm_mem_is_private) chooses the error code: PFERR_GUEST_FINAL_MASK, plus
 *   PFERR_PRIVATE_ACCESS for a private GFN — else the GPA gets the shared bit (gfn_direct_bits);
 * - kvm_tdp_map_page runs the fault path (mmuPageFault.ts from kvm_mmu_faultin_pfn on; for a private GFN
 *   of a finalized TD the leaf hook is TDH.MEM.PAGE.AUG, so the page waits PENDING for the guest's
 *   ACCEPT) and repeats it for as long as it answers RET_PF_RETRY — an attribute change or a guest_memfd
 *   hole punch in progress over the GFN makes it wait for the invalidation's end, as a vCPU's fault does;
 *   RET_PF_FIXED or RET_PF_SPURIOUS map the page, RET_PF_EMULATE (no memslot) is -ENOENT, and a fault
 *   whose private/shared kind no longer matches the attribute ends in -EFAULT (kvm_mmu_faultin_pfn's
 *   memory-fault exit, here only an error code).
 * Each mapped page advances gpa and shrinks size by what the mapping covers (4K upstream for TDX). The
 * ioctl returns 0 if at least one page was mapped, else the error, and copies the rest of the range back.
 *
 * Not modelled: -EINTR for a pending signal (the model signals only threads inside KVM_RUN), the -EIO of
 * a dead VM (KVM_REQ_VM_DEAD) and -EAGAIN, which upstream returns only when the memslot under the
 * prefault is being deleted or moved (3ccbf6f47098 "KVM: x86/mmu: Return -EAGAIN if userspace
 * deletes/moves memslot during prefault"): the model's memslots do not change yet.
 */
import { out, payloadOf } from '../../src/protocol/messages.ts';
import { EINVAL, EOPNOTSUPP, ENOENT, EFAULT, EIO, PFERR_GUEST_FINAL_MASK, PFERR_PRIVATE_ACCESS, RET_PF_FIXED, RET_PF_SPURIOUS } from '../../src/arch/kvmApi.ts';
import { PAGE_SIZE, gpaToGfn, sharedBit, pageSizeOfPgLevel } from '../../src/arch/gpa.ts';
import { beginFault, fault } from './kvmPageFault.ts';
import { assign, emit, type VcpuGuards } from './vcpuSetup.ts';

/** The ioctl in progress: what is left of the range, its size at the start, and the last page's error. */
export interface PreFaultState {
  gpa: bigint;
  size: bigint;
  fullSize: bigint;
  ret: number;
}

const U64 = (1n << 64n) - 1n;

/** kvm_vcpu_pre_fault_memory's checks of struct kvm_pre_fault_memory before it loads the vCPU. */
export function preFaultArgsError(gpa: bigint, size: bigint, flags: bigint): number | null {
  if (flags !== 0n) return EINVAL;
  // The end is computed in u64: a range that wraps past 2^64 (or is empty) is refused.
  if (gpa % PAGE_SIZE !== 0n || size % PAGE_SIZE !== 0n || ((gpa + size) & U64) <= gpa) return EINVAL;
  return null;
}

const pf = (c: { preFault?: PreFaultState }) => c.preFault!;

export const preFaultMemoryGuards = {
  preFaultArgsBad: ({ event }) => {
    const r = payloadOf(event, 'ioctl', 'KVM_PRE_FAULT_MEMORY');
    return preFaultArgsError(r.gpa, r.size, r.flags) !== null;
  },
  preFaultNotAllowed: ({ event }) => !payloadOf(event, 'kvm-call-return', 'pre_fault_allowed').allowed,
  /** kvm_is_gfn_alias: the shared bit is KVM's business, never part of a GPA userspace passes. */
  preFaultGfnAlias: ({ context }) => (pf(context).gpa & sharedBit(context.gpaw)) !== 0n,
  isPreFault: ({ context }) => context.fault?.preFault === true,
  preFaultMapped: ({ context }) => fault(context).ret === RET_PF_FIXED || fault(context).ret === RET_PF_SPURIOUS,
  preFaultMore: ({ context }) => pf(context).size > 0n,
} satisfies VcpuGuards;

export const preFaultMemoryActions = {
  preFaultRefuse: emit(({ context, event }) => {
    const r = payloadOf(event, 'ioctl', 'KVM_PRE_FAULT_MEMORY');
    return out('vmm', 'ioctl-return', 'KVM_PRE_FAULT_MEMORY', { vcpu: context.vcpu, ret: preFaultArgsError(r.gpa, r.size, r.flags)!, gpa: r.gpa, size: r.size });
  }),
  beginPreFault: assign({
    preFault: ({ event }) => {
      const r = payloadOf(event, 'ioctl', 'KVM_PRE_FAULT_MEMORY');
      return { gpa: r.gpa, size: r.size, fullSize: r.size, ret: 0 };
    },
  }),
  readPreFaultAllowed: emit(({ context }) => out('kvm.vm', 'kvm-call', 'pre_fault_allowed', { vcpu: context.vcpu })),
  /** kvm_mem_is_private: the attribute half of what kvm.mmu answers a FAULTIN with. */
  readPreFaultAttribute: emit(({ context }) => out('kvm.mmu', 'mmu', 'FAULTIN', { vcpu: context.vcpu, gfn: gpaToGfn(pf(context).gpa), isPrivate: true })),
  preFaultEopnotsupp: assign({ preFault: ({ context }) => ({ ...pf(context), ret: EOPNOTSUPP }) }),
  preFaultEinval: assign({ preFault: ({ context }) => ({ ...pf(context), ret: EINVAL }) }),
  preFaultEnoent: assign({ preFault: ({ context }) => ({ ...pf(context), ret: ENOENT }) }),
  preFaultEfault: assign({ preFault: ({ context }) => ({ ...pf(context), ret: EFAULT }) }),
  preFaultEio: assign({ preFault: ({ context }) => ({ ...pf(context), ret: EIO }) }),
  /** kvm_tdp_map_page's fault: GUEST_FINAL, PRIVATE_ACCESS for a private GFN, else the shared alias. */
  beginPreFaultFault: assign({
    fault: ({ context, event }) => {
      const priv = payloadOf(event, 'mmu', 'FAULTIN_RESULT').attrPrivate && context.vmType === 'tdx';
      const gpa = priv ? pf(context).gpa : pf(context).gpa | (context.vmType === 'tdx' ? sharedBit(context.gpaw) : 0n);
      const f = beginFault(context, gpa, 0n, 0n);
      return { ...f, errorCode: PFERR_GUEST_FINAL_MASK | (priv ? PFERR_PRIVATE_ACCESS : 0n), preFault: true as const };
    },
  }),
  /** The mapping covers up to the end of its (huge) page: the range moves on by at most that. */
  advancePreFault: assign({
    preFault: ({ context }) => {
      const p = pf(context);
      const span = pageSizeOfPgLevel(fault(context).goalLevel);
      const end = (p.gpa & ~(span - 1n)) + span;
      const step = end - p.gpa < p.size ? end - p.gpa : p.size;
      return { ...p, gpa: p.gpa + step, size: p.size - step, ret: 0 };
    },
    fault: () => null,
    frozen: () => null,
  }),
  /** Success if at least one page was mapped; the remaining range goes back to userspace. */
  preFaultReturn: emit(({ context }) => {
    const p = pf(context);
    return out('vmm', 'ioctl-return', 'KVM_PRE_FAULT_MEMORY', { vcpu: context.vcpu, ret: p.fullSize === p.size ? p.ret : 0, gpa: p.gpa, size: p.size });
  }),
  endPreFault: assign({ preFault: () => undefined, fault: () => null, frozen: () => null }),
};

export const preFaultMemoryStates = {
  preFaulting: {
    initial: 'page',
    states: {
      /** kvm_arch_vcpu_pre_fault_memory for the page at gpa. */
      page: {
        entry: 'readPreFaultAllowed',
        on: {
          pre_fault_allowed: [
            { guard: 'preFaultNotAllowed', target: 'done', actions: 'preFaultEopnotsupp' },
            { guard: 'preFaultGfnAlias', target: 'done', actions: 'preFaultEinval' },
            { target: 'readingAttribute' },
          ],
        },
      },
      readingAttribute: {
        entry: 'readPreFaultAttribute',
        on: { FAULTIN_RESULT: { target: '#kvmVcpu.handlingEptViolation.faultin', actions: 'beginPreFaultFault' } },
      },
      /** kvm_tdp_map_page returned 0: count the page, go on while the range lasts. */
      pageDone: { always: { target: 'advanced', actions: 'advancePreFault' } },
      advanced: { always: [{ guard: 'preFaultMore', target: 'page' }, { target: 'done' }] },
      noSlot: { always: { target: 'done', actions: 'preFaultEnoent' } },
      memoryFault: { always: { target: 'done', actions: 'preFaultEfault' } },
      /** RET_PF_CONTINUE / RET_PF_INVALID: "could not fix page fault during prefault". */
      notFixed: { always: { target: 'done', actions: 'preFaultEio' } },
      done: { always: { target: '#kvmVcpu.inUserspace', actions: ['preFaultReturn', 'endPreFault'] } },
    },
  },
} as const;
