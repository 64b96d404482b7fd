/**
 * handle_tdvmcall: a TD exit for TDG.VP.VMCALL, dispatched on R10/R11 (§5c.1 step 6, §4.3), and the
 * completions the next KVM_RUN applies (tdx_complete_vmcall_map_gpa, tdx_complete_pio_out).
 *
 * MapGPA (§6.iv steps 2–5, tdx_map_gpa): checked, then handed to the VMM as one KVM_EXIT_HYPERCALL
 * (KVM_HC_MAP_GPA_RANGE) per 2 MiB chunk; the VMM's run->hypercall.ret completes it. Between chunks,
 * kvm_vcpu_has_events: an interrupt posted meanwhile (ON set) ends the call with RETRY and R11 = the
 * next chunk, so the guest re-enters, takes the interrupt and resumes from R11 (policy mapGpaEventCheck).
 * #VE.RequestMMIO (tdx_emulate_mmio, §6.i steps 11–12): a TD's MMIO, after its #VE, becomes
 * KVM_EXIT_MMIO and completes into R11 (vcpuRun.ts's completeMmio).
 * Instruction.IO (tdx_emulate_io): no in-kernel device claims a port here, so an OUT goes to the VMM as
 * KVM_EXIT_IO and completes with R10 = SUCCESS on the next KVM_RUN.
 * Instruction.HLT halts the vCPU (halt.ts); other sub-functions answer SUBFUNC_UNSUPPORTED.
 */
import { out, payloadOf } from '../../src/protocol/messages.ts';
import {
  TDVMCALL_VE_REQUEST_MMIO,
  TDVMCALL_INSTRUCTION_HLT,
  TDVMCALL_MAP_GPA,
  TDVMCALL_STATUS_INVALID_OPERAND,
  TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED,
  TDVMCALL_STATUS_ALIGN_ERROR,
  TDVMCALL_STATUS_RETRY,
  TDVMCALL_STATUS_SUCCESS,
  TDVMCALL_INSTRUCTION_IO,
} from '../../src/arch/tdcall.ts';
import {
  KVM_EXIT_HYPERCALL,
  KVM_EXIT_HYPERCALL_LONG_MODE,
  KVM_EXIT_IO,
  KVM_EXIT_IO_OUT,
  KVM_PIO_PAGE_OFFSET,
  KVM_HC_MAP_GPA_RANGE,
  KVM_MAP_GPA_RANGE_ENCRYPTED,
  KVM_MAP_GPA_RANGE_DECRYPTED,
  HYPERCALL_RET_EAGAIN,
} from '../../src/arch/kvmApi.ts';
import { sharedBit, PAGE_SIZE } from '../../src/arch/gpa.ts';
import { sizeMask } from '../guest/program.ts';
import { assign, emit, enqueueActions, type VcpuGuards } from './vcpuSetup.ts';

/** tdx_map_gpa splits a conversion into chunks of this size, checking for events between them. */
export const TDX_MAP_GPA_MAX_LEN = 0x200000n;

export const tdvmcallGuards = {
  tdvmcallIsKvmHypercall: ({ context }) => (context.exit!.gprs!.R10 ?? 0n) !== 0n,
  tdvmcallIsMmio: ({ context }) => Number(context.exit!.gprs!.R11) === TDVMCALL_VE_REQUEST_MMIO,
  tdvmcallIsHlt: ({ context }) => Number(context.exit!.gprs!.R11) === TDVMCALL_INSTRUCTION_HLT,
  tdvmcallIsMapGpa: ({ context }) => Number(context.exit!.gprs!.R11) === TDVMCALL_MAP_GPA,
  tdvmcallIsIo: ({ context }) => Number(context.exit!.gprs!.R11) === TDVMCALL_INSTRUCTION_IO,
  mapGpaExitDisabled: ({ context }) => !context.mapGpaExit,
  /** tdx_map_gpa: no wrap, both ends legal GPAs and on the same side of the shared bit (§6.iv step 2). */
  mapGpaInvalid: ({ context }) => {
    const g = context.exit!.gprs!;
    const gpa = g.R12 ?? 0n;
    const size = g.R13 ?? 0n;
    const last = gpa + size - 1n;
    const limit = 1n << BigInt(context.gpaw);
    const sb = sharedBit(context.gpaw);
    return gpa + size <= gpa || gpa >= limit || last >= limit || (gpa & sb) !== (last & sb);
  },
  mapGpaMisaligned: ({ context }) => ((context.exit!.gprs!.R12 ?? 0n) | (context.exit!.gprs!.R13 ?? 0n)) % PAGE_SIZE !== 0n,
  mapGpaPending: ({ context }) => context.mapGpa !== null,
  /** tdx_complete_vmcall_map_gpa: run->hypercall.ret 0 and the range not yet done → the next chunk. */
  mapGpaMoreChunks: ({ context, event }) =>
    (payloadOf(event, 'ioctl', 'KVM_RUN').hypercallRet ?? 0) === 0 && context.mapGpa!.next + TDX_MAP_GPA_MAX_LEN < context.mapGpa!.end,
  mapGpaEventCheck: ({ context }) => context.policies.mapGpaEventCheck,
  pioPending: ({ context }) => context.pioOut,
  /** tdx_emulate_io: 1, 2 or 4 bytes; the model's guest only writes (OUT). */
  ioArgsInvalid: ({ context }) => {
    const g = context.exit!.gprs!;
    const size = Number(g.R12 ?? 0n);
    return (size !== 1 && size !== 2 && size !== 4) || g.R13 !== 1n;
  },
  /** tdx_emulate_mmio's checks: size 1/2/4/8, direction 0/1, the GPA range shared (§6.i step 11). */
  mmioArgsInvalid: ({ context }) => {
    const g = context.exit!.gprs!;
    const size = Number(g.R12 ?? 0n);
    const end = (g.R14 ?? 0n) + BigInt(size) - 1n;
    const sb = sharedBit(context.gpaw);
    return ![1, 2, 4, 8].includes(size) || (g.R13 !== 0n && g.R13 !== 1n) || ((g.R14 ?? 0n) & sb) === 0n || (end & sb) === 0n;
  },
} satisfies VcpuGuards;

export const tdvmcallActions = {
  unsupportedHypercall: assign({ deathReason: () => 'model limit: KVM hypercalls (TDVMCALL with R10 != 0) are not modelled' }),
  unsupportedSubfunction: assign({ enterGprs: () => ({ R10: TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED }) }),
  /** TD: tdx_emulate_mmio with no KVM_MMIO_BUS device → KVM_EXIT_MMIO, shared bit stripped. */
  tdMmioExit: assign({
    mmio: ({ context }) => {
      const g = context.exit!.gprs!;
      const size = Number(g.R12);
      return { physAddr: g.R14! & ~sharedBit(context.gpaw), len: size, isWrite: g.R13 === 1n, data: g.R13 === 1n ? g.R15! & sizeMask(size) : 0n };
    },
  }),
  invalidMmioArgs: assign({ enterGprs: () => ({ R10: TDVMCALL_STATUS_INVALID_OPERAND }) }),
  // ---- MapGPA (§6.iv) ----
  mapGpaUnsupported: assign({ enterGprs: ({ context }) => ({ R10: TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED, R11: context.exit!.gprs!.R12 ?? 0n }) }),
  mapGpaInvalidOperand: assign({ enterGprs: ({ context }) => ({ R10: TDVMCALL_STATUS_INVALID_OPERAND, R11: context.exit!.gprs!.R12 ?? 0n }) }),
  mapGpaAlignError: assign({ enterGprs: ({ context }) => ({ R10: TDVMCALL_STATUS_ALIGN_ERROR, R11: context.exit!.gprs!.R12 ?? 0n }) }),
  beginMapGpa: assign({ mapGpa: ({ context }) => ({ next: context.exit!.gprs!.R12!, end: context.exit!.gprs!.R12! + context.exit!.gprs!.R13! }) }),
  nextMapGpaChunk: assign({ mapGpa: ({ context }) => ({ ...context.mapGpa!, next: context.mapGpa!.next + TDX_MAP_GPA_MAX_LEN }) }),
  /** tdx_complete_vmcall_map_gpa: a pending event stops the walk after this chunk; R11 tells the guest where to resume. */
  mapGpaRetryForEvent: assign(({ context }) => ({ mapGpa: null, enterGprs: { R10: TDVMCALL_STATUS_RETRY, R11: context.mapGpa!.next + TDX_MAP_GPA_MAX_LEN } })),
  /** A chunk goes to userspace while the vCPU has an interrupt posted and not yet taken (interrupt-latency). */
  countChunkWhilePosted: enqueueActions(({ context, enqueue }) => {
    if (context.piDesc.on) enqueue.assign({ exitsWhilePosted: context.exitsWhilePosted + 1 });
  }),
  /** __tdx_map_gpa: one chunk of at most 2 MiB; args[0] without the shared bit, args[2] the direction. */
  exitHypercall: emit(({ context }) => {
    const m = context.mapGpa!;
    const remaining = m.end - m.next;
    const size = remaining > TDX_MAP_GPA_MAX_LEN ? TDX_MAP_GPA_MAX_LEN : remaining;
    const sb = sharedBit(context.gpaw);
    return out('vmm', 'kvm-exit', 'KVM_EXIT_HYPERCALL', {
      vcpu: context.vcpu,
      exit_reason: KVM_EXIT_HYPERCALL,
      nr: KVM_HC_MAP_GPA_RANGE,
      args: [m.next & ~sb, size / PAGE_SIZE, BigInt((m.next & sb) !== 0n ? KVM_MAP_GPA_RANGE_DECRYPTED : KVM_MAP_GPA_RANGE_ENCRYPTED)],
      flags: KVM_EXIT_HYPERCALL_LONG_MODE,
      ret: 0,
    });
  }),
  /**
   * tdx_complete_vmcall_map_gpa, final chunk or error: R10 stays the guest's 0 (SUCCESS) when done; EAGAIN
   * → RETRY and EINVAL → INVALID_OPERAND with R11 = the next GPA ([KX]; v6.16 made every error INVALID_OPERAND).
   */
  completeMapGpa: assign(({ context, event }) => {
    const ret = payloadOf(event, 'ioctl', 'KVM_RUN').hypercallRet ?? 0;
    const m = context.mapGpa!;
    if (ret === 0) return { mapGpa: null, enterGprs: { R10: context.exit!.gprs!.R10! } };
    // The VMM model answers only 0, EAGAIN or EINVAL ([KX] fails KVM_RUN for anything else).
    const status = ret === HYPERCALL_RET_EAGAIN ? TDVMCALL_STATUS_RETRY : TDVMCALL_STATUS_INVALID_OPERAND;
    return { mapGpa: null, enterGprs: { R10: status, R11: m.next } };
  }),
  // ---- Instruction.IO ----
  /** The OUT's bytes go to run->io at data_offset; no in-kernel device owns any port in the model. */
  exitIo: enqueueActions(({ context, enqueue }) => {
    const g = context.exit!.gprs!;
    const size = Number(g.R12!);
    enqueue.assign({ pioOut: true });
    enqueue.emit(
      out('vmm', 'kvm-exit', 'KVM_EXIT_IO', {
        vcpu: context.vcpu,
        exit_reason: KVM_EXIT_IO,
        direction: KVM_EXIT_IO_OUT,
        size,
        port: Number(g.R14! & 0xffffn),
        count: 1,
        data_offset: KVM_PIO_PAGE_OFFSET * Number(PAGE_SIZE),
        data: g.R15! & sizeMask(size),
      }),
    );
  }),
  completePioOut: assign({ pioOut: () => false, enterGprs: () => ({ R10: TDVMCALL_STATUS_SUCCESS }) }),
  invalidIoArgs: assign({ enterGprs: () => ({ R10: TDVMCALL_STATUS_INVALID_OPERAND }) }),
};

export const tdvmcallStates = {
  /** handle_tdvmcall dispatch on R10/R11 (§5c.1 step 6, §4.3). */
  handlingTdvmcall: {
    always: [
      { guard: 'tdvmcallIsKvmHypercall', target: 'vmDead', actions: 'unsupportedHypercall' },
      { guard: 'tdvmcallIsMmio', target: 'emulatingTdMmio' },
      { guard: 'tdvmcallIsHlt', target: 'halting' },
      { guard: 'tdvmcallIsMapGpa', target: 'mappingGpa' },
      { guard: 'tdvmcallIsIo', target: 'emulatingTdIo' },
      { target: 'entering', actions: 'unsupportedSubfunction' },
    ],
  },
  /** tdx_map_gpa's checks in order, then the first chunk to userspace (§6.iv steps 2–3). */
  mappingGpa: {
    always: [
      { guard: 'mapGpaExitDisabled', target: 'entering', actions: 'mapGpaUnsupported' },
      { guard: 'mapGpaInvalid', target: 'entering', actions: 'mapGpaInvalidOperand' },
      { guard: 'mapGpaMisaligned', target: 'entering', actions: 'mapGpaAlignError' },
      { target: 'inUserspace', actions: ['beginMapGpa', 'exitHypercall'] },
    ],
  },
  /** tdx_emulate_mmio (§6.i step 11): bad arguments are INVALID_OPERAND; the access goes to userspace. */
  emulatingTdMmio: {
    always: [{ guard: 'mmioArgsInvalid', target: 'entering', actions: 'invalidMmioArgs' }, { target: 'inUserspace', actions: ['tdMmioExit', 'exitMmio'] }],
  },
  /** tdx_emulate_io (§4.3 Instruction.IO): bad arguments are INVALID_OPERAND; an OUT goes to userspace. */
  emulatingTdIo: {
    always: [{ guard: 'ioArgsInvalid', target: 'entering', actions: 'invalidIoArgs' }, { target: 'inUserspace', actions: 'exitIo' }],
  },
} as const;
