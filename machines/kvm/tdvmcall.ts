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
 * Instruction.IO (tdx_emulate_io): R12 size 1/2/4 and R13 direction 0/1, else INVALID_OPERAND; no
 * in-kernel device claims a port here, so an OUT goes to the VMM as KVM_EXIT_IO and completes on the next
 * KVM_RUN (tdx_complete_pio_out), an IN completes with the VMM's bytes in R11 (tdx_complete_pio_in).
 * #VE.RequestMMIO: size 1/2/4/8, direction 0/1, both ends of the access shared, else INVALID_OPERAND; an
 * access that crosses a page goes to userspace like any other (upstream dropped the RFC's -E2BIG check).
 * ReportFatalError (tdx_report_fatal_error): no checks; KVM_EXIT_SYSTEM_EVENT of type TDX_FATAL with the
 * 16 GPRs in VCPU_REGS order, and no completion: the guest is not expected to run again.
 * GetTdVmCallInfo (tdx_get_td_vm_call_info): leaf 0 answered in the kernel (R11–R14 = 0, SUCCESS), leaf 1
 * handed to userspace as KVM_EXIT_TDX with SUCCESS and zeroes pre-filled, any other leaf INVALID_OPERAND.
 * GetQuote (tdx_get_quote): a private buffer GPA is INVALID_OPERAND; otherwise KVM_EXIT_TDX with
 * SUBFUNC_UNSUPPORTED pre-filled, which a VMM without a quote service leaves (tdx_complete_simple).
 * Instruction.WRMSR (tdx_emulate_wrmsr → kvm_emulate_wrmsr → kvm_set_msr): for a TD, KVM emulates the
 * x2APIC registers the CPU does not virtualize (tdx_has_emulated_msr lists the ICR), so an ICR write is
 * kvm_x2apic_icr_write → kvm_apic_send_ipi: a fixed IPI in physical mode is posted to the destination vCPU
 * (postedInterrupt.ts); the call returns once it is, and R10 = SUCCESS. The model emulates no other MSR
 * and no other ICR form (INVALID_OPERAND, what tdx_complete_emulated_msr returns for a failed write).
 * Instruction.HLT halts the vCPU (halt.ts); every other sub-function answers SUBFUNC_UNSUPPORTED,
 * SetupEventNotifyInterrupt included (handle_tdvmcall of v6.16).
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
  TDVMCALL_INSTRUCTION_WRMSR,
  TDVMCALL_REPORT_FATAL_ERROR,
  TDVMCALL_GET_TD_VM_CALL_INFO,
  TDVMCALL_GET_QUOTE,
} from '../../src/arch/tdcall.ts';
import {
  KVM_EXIT_HYPERCALL,
  KVM_EXIT_HYPERCALL_LONG_MODE,
  KVM_EXIT_IO,
  KVM_EXIT_IO_OUT,
  KVM_EXIT_IO_IN,
  KVM_EXIT_SYSTEM_EVENT,
  KVM_SYSTEM_EVENT_TDX_FATAL,
  KVM_EXIT_TDX,
  KVM_PIO_PAGE_OFFSET,
  KVM_HC_MAP_GPA_RANGE,
  KVM_MAP_GPA_RANGE_ENCRYPTED,
  KVM_MAP_GPA_RANGE_DECRYPTED,
  HYPERCALL_RET_EAGAIN,
} from '../../src/arch/kvmApi.ts';
import { sharedBit, PAGE_SIZE } from '../../src/arch/gpa.ts';
import { TDX_SUCCESS } from '../../src/arch/tdxStatus.ts';
import { EXIT_REASON_TDCALL } from '../../src/arch/vmx.ts';
import { sizeMask } from '../guest/program.ts';
import { APIC_DM_FIXED, MSR_X2APIC_ICR, decodeX2apicIcr } from '../../src/arch/apic.ts';
import { not } from 'xstate';
import { assign, emit, enqueueActions, type VcpuGuards } from './vcpuSetup.ts';

/** tdx_map_gpa splits a conversion into chunks of this size, checking for events between them. */
export const TDX_MAP_GPA_MAX_LEN = 0x200000n;

export const tdvmcallGuards = {
  tdvmcallIsKvmHypercall: ({ context }) => (context.exit!.gprs!.R10 ?? 0n) !== 0n,
  tdvmcallIsMmio: ({ context }) => Number(context.exit!.gprs!.R11) === TDVMCALL_VE_REQUEST_MMIO,
  tdvmcallIsHlt: ({ context }) => Number(context.exit!.gprs!.R11) === TDVMCALL_INSTRUCTION_HLT,
  tdvmcallIsMapGpa: ({ context }) => Number(context.exit!.gprs!.R11) === TDVMCALL_MAP_GPA,
  tdvmcallIsWrmsr: ({ context }) => context.exit!.gprs!.R11 === BigInt(TDVMCALL_INSTRUCTION_WRMSR),
  /** A fixed IPI, physical destination, no shorthand: the ICR form Linux's x2APIC physical send writes. */
  icrFixedIpi: ({ context }) => {
    const g = context.exit!.gprs!;
    if (Number(g.R12 ?? 0n) !== MSR_X2APIC_ICR) return false;
    const icr = decodeX2apicIcr(g.R13 ?? 0n);
    return icr.deliveryMode === APIC_DM_FIXED && !icr.logical && icr.shorthand === 0;
  },
  icrToSelf: ({ context }) => decodeX2apicIcr(context.exit!.gprs!.R13 ?? 0n).destination === context.vcpu,
  /** The return of our own kvm_apic_send_ipi, not another vCPU's request arriving meanwhile. */
  ipiDelivered: ({ event }) => event.msg.kind === 'kvm-call-return',
  tdvmcallIsIo: ({ context }) => Number(context.exit!.gprs!.R11) === TDVMCALL_INSTRUCTION_IO,
  tdvmcallIsReportFatalError: ({ context }) => context.exit!.gprs!.R11 === BigInt(TDVMCALL_REPORT_FATAL_ERROR),
  tdvmcallIsGetTdVmCallInfo: ({ context }) => context.exit!.gprs!.R11 === BigInt(TDVMCALL_GET_TD_VM_CALL_INFO),
  tdvmcallIsGetQuote: ({ context }) => context.exit!.gprs!.R11 === BigInt(TDVMCALL_GET_QUOTE),
  tdVmCallInfoLeaf0: ({ context }) => (context.exit!.gprs!.R12 ?? 0n) === 0n,
  tdVmCallInfoLeaf1: ({ context }) => context.exit!.gprs!.R12 === 1n,
  /** tdx_get_quote: the buffer must be shared (vt_is_tdx_private_gpa on R12). */
  quoteGpaPrivate: ({ context }) => ((context.exit!.gprs!.R12 ?? 0n) & sharedBit(context.gpaw)) === 0n,
  pioInPending: ({ context }) => context.pioIn !== null,
  tdxExitPending: ({ context }) => context.tdxExit !== null,
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
  /** tdx_emulate_io: direction 0 or 1, 1, 2 or 4 bytes. */
  ioArgsInvalid: ({ context }) => {
    const g = context.exit!.gprs!;
    const size = g.R12 ?? 0n;
    return (size !== 1n && size !== 2n && size !== 4n) || (g.R13 !== 0n && g.R13 !== 1n);
  },
  /** tdx_emulate_mmio's checks: size 1/2/4/8, direction 0/1, the GPA range shared (§6.i step 11). */
  mmioArgsInvalid: ({ context }) => {
    const g = context.exit!.gprs!;
    // `int size, write` in tdx_emulate_mmio: only the low 32 bits of R12 and R13 count.
    const size = Number(BigInt.asIntN(32, g.R12 ?? 0n));
    const write = Number(BigInt.asIntN(32, g.R13 ?? 0n));
    const end = (g.R14 ?? 0n) + BigInt(size) - 1n;
    const sb = sharedBit(context.gpaw);
    return ![1, 2, 4, 8].includes(size) || (write !== 0 && write !== 1) || ((g.R14 ?? 0n) & sb) === 0n || (end & sb) === 0n;
  },
} satisfies VcpuGuards;

export const tdvmcallActions = {
  unsupportedHypercall: assign({ deathReason: () => 'model limit: KVM hypercalls (TDVMCALL with R10 != 0) are not modelled' }),
  unsupportedSubfunction: assign({ enterGprs: () => ({ R10: TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED }) }),
  /** TD: tdx_emulate_mmio with no KVM_MMIO_BUS device → KVM_EXIT_MMIO, shared bit stripped. */
  tdMmioExit: assign({
    mmio: ({ context }) => {
      const g = context.exit!.gprs!;
      const size = Number(BigInt.asIntN(32, g.R12!));
      const write = BigInt.asIntN(32, g.R13!) === 1n;
      return { physAddr: g.R14! & ~sharedBit(context.gpaw), len: size, isWrite: write, data: write ? g.R15! & sizeMask(size) : 0n };
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
    return out(context.runOwner ?? 'vmm', 'kvm-exit', 'KVM_EXIT_HYPERCALL', {
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
  /** The bytes of an OUT go to run->io at data_offset; an IN waits there for the VMM's. No in-kernel device owns a port in the model. */
  exitIo: enqueueActions(({ context, enqueue }) => {
    const g = context.exit!.gprs!;
    const size = Number(g.R12!);
    const isOut = g.R13 === 1n;
    enqueue.assign(isOut ? { pioOut: true } : { pioIn: size });
    enqueue.emit(
      out(context.runOwner ?? 'vmm', 'kvm-exit', 'KVM_EXIT_IO', {
        vcpu: context.vcpu,
        exit_reason: KVM_EXIT_IO,
        direction: isOut ? KVM_EXIT_IO_OUT : KVM_EXIT_IO_IN,
        size,
        port: Number(g.R14! & 0xffffn),
        count: 1,
        data_offset: KVM_PIO_PAGE_OFFSET * Number(PAGE_SIZE),
        data: isOut ? g.R15! & sizeMask(size) : 0n,
      }),
    );
  }),
  completePioOut: assign({ pioOut: () => false, enterGprs: () => ({ R10: TDVMCALL_STATUS_SUCCESS }) }),
  /** tdx_complete_pio_in: the size's bytes from run->io into R11; R10 stays the guest's 0. */
  completePioIn: assign(({ context, event }) => {
    const data = payloadOf(event, 'ioctl', 'KVM_RUN').ioData ?? 0n;
    return { pioIn: null, enterGprs: { R10: context.exit!.gprs!.R10!, R11: data & sizeMask(context.pioIn!) } };
  }),
  // ---- Instruction.WRMSR: the x2APIC ICR ----
  /** kvm_apic_send_ipi from this thread: __vmx_deliver_posted_interrupt on the destination's descriptor. */
  sendApicIpi: emit(({ context }) => {
    const icrValue = context.exit!.gprs!.R13!;
    const icr = decodeX2apicIcr(icrValue);
    return out(`kvm.vcpu${icr.destination}`, 'kvm-call', 'kvm_apic_send_ipi', { vcpu: icr.destination, source: context.vcpu, icr: icrValue, vector: icr.vector });
  }),
  wrmsrDone: assign({ enterGprs: () => ({ R10: TDVMCALL_STATUS_SUCCESS }) }),
  wrmsrFailed: assign({ enterGprs: () => ({ R10: TDVMCALL_STATUS_INVALID_OPERAND }) }),
  invalidIoArgs: assign({ enterGprs: () => ({ R10: TDVMCALL_STATUS_INVALID_OPERAND }) }),
  // ---- ReportFatalError, GetTdVmCallInfo, GetQuote ----
  /**
   * tdx_report_fatal_error: data[] is RAX (TDH.VP.ENTER's return for this exit), RCX, RDX, RBX, RSP = 0,
   * RBP = 0, RSI, RDI, R8–R15; the registers the guest did not expose read 0.
   */
  exitSystemEventFatal: emit(({ context }) => {
    const g = context.exit!.gprs!;
    const data = [TDX_SUCCESS | BigInt(EXIT_REASON_TDCALL), g.RCX ?? 0n, g.RDX ?? 0n, g.RBX ?? 0n, 0n, 0n, g.RSI ?? 0n, g.RDI ?? 0n, g.R8 ?? 0n, g.R9 ?? 0n, g.R10 ?? 0n, g.R11 ?? 0n, g.R12 ?? 0n, g.R13 ?? 0n, g.R14 ?? 0n, g.R15 ?? 0n];
    return out(context.runOwner ?? 'vmm', 'kvm-exit', 'KVM_EXIT_SYSTEM_EVENT', { vcpu: context.vcpu, exit_reason: KVM_EXIT_SYSTEM_EVENT, type: KVM_SYSTEM_EVENT_TDX_FATAL, ndata: data.length, data });
  }),
  tdVmCallInfoInKernel: assign({ enterGprs: () => ({ R10: TDVMCALL_STATUS_SUCCESS, R11: 0n, R12: 0n, R13: 0n, R14: 0n }) }),
  exitTdxGetTdVmCallInfo: enqueueActions(({ context, enqueue }) => {
    enqueue.assign({ tdxExit: { nr: TDVMCALL_GET_TD_VM_CALL_INFO } });
    enqueue.emit(
      out(context.runOwner ?? 'vmm', 'kvm-exit', 'KVM_EXIT_TDX', {
        vcpu: context.vcpu,
        exit_reason: KVM_EXIT_TDX,
        flags: 0,
        nr: TDVMCALL_GET_TD_VM_CALL_INFO,
        get_tdvmcall_info: { leaf: context.exit!.gprs!.R12!, ret: TDVMCALL_STATUS_SUCCESS, r11: 0n, r12: 0n, r13: 0n, r14: 0n },
      }),
    );
  }),
  exitTdxGetQuote: enqueueActions(({ context, enqueue }) => {
    const g = context.exit!.gprs!;
    enqueue.assign({ tdxExit: { nr: TDVMCALL_GET_QUOTE } });
    enqueue.emit(
      out(context.runOwner ?? 'vmm', 'kvm-exit', 'KVM_EXIT_TDX', {
        vcpu: context.vcpu,
        exit_reason: KVM_EXIT_TDX,
        flags: 0,
        nr: TDVMCALL_GET_QUOTE,
        get_quote: { ret: TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED, gpa: (g.R12 ?? 0n) & ~sharedBit(context.gpaw), size: g.R13 ?? 0n },
      }),
    );
  }),
  invalidOperand: assign({ enterGprs: () => ({ R10: TDVMCALL_STATUS_INVALID_OPERAND }) }),
  /** tdx_complete_get_td_vm_call_info copies ret and R11–R14; tdx_complete_simple only ret. */
  completeTdxExit: assign(({ context, event }) => {
    const r = payloadOf(event, 'ioctl', 'KVM_RUN').tdx;
    const prefilled = context.tdxExit!.nr === TDVMCALL_GET_QUOTE ? TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED : TDVMCALL_STATUS_SUCCESS;
    const enterGprs =
      context.tdxExit!.nr === TDVMCALL_GET_TD_VM_CALL_INFO
        ? { R10: r?.ret ?? prefilled, R11: r?.r11 ?? 0n, R12: r?.r12 ?? 0n, R13: r?.r13 ?? 0n, R14: r?.r14 ?? 0n }
        : { R10: r?.ret ?? prefilled };
    return { tdxExit: null, enterGprs };
  }),
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
      { guard: 'tdvmcallIsWrmsr', target: 'emulatingWrmsr' },
      { guard: 'tdvmcallIsReportFatalError', target: 'inUserspace', actions: 'exitSystemEventFatal' },
      { guard: 'tdvmcallIsGetTdVmCallInfo', target: 'gettingTdVmCallInfo' },
      { guard: 'tdvmcallIsGetQuote', target: 'gettingQuote' },
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
  /** tdx_emulate_io (§4.3 Instruction.IO): bad arguments are INVALID_OPERAND; the access goes to userspace. */
  emulatingTdIo: {
    always: [{ guard: 'ioArgsInvalid', target: 'entering', actions: 'invalidIoArgs' }, { target: 'inUserspace', actions: 'exitIo' }],
  },
  /**
   * kvm_emulate_wrmsr of the x2APIC ICR: a self-IPI posts here; another vCPU's descriptor is posted by a
   * kvm_apic_send_ipi, which runs until the destination's PIR, ON and notification (or wake-up) are done.
   */
  emulatingWrmsr: {
    initial: 'decoding',
    states: {
      decoding: {
        always: [
          { guard: not('icrFixedIpi'), target: '#kvmVcpu.entering', actions: 'wrmsrFailed' },
          { guard: 'icrToSelf', target: '#kvmVcpu.entering', actions: ['postSelfIpi', 'wrmsrDone'] },
          { target: 'sendingIpi', actions: 'sendApicIpi' },
        ],
      },
      sendingIpi: {
        on: {
          kvm_apic_send_ipi: [{ guard: 'ipiDelivered', target: '#kvmVcpu.entering', actions: 'wrmsrDone' }, { actions: 'postInterrupt' }],
        },
      },
    },
  },
  /** tdx_get_td_vm_call_info: R12 selects the leaf. */
  gettingTdVmCallInfo: {
    always: [
      { guard: 'tdVmCallInfoLeaf0', target: 'entering', actions: 'tdVmCallInfoInKernel' },
      { guard: 'tdVmCallInfoLeaf1', target: 'inUserspace', actions: 'exitTdxGetTdVmCallInfo' },
      { target: 'entering', actions: 'invalidOperand' },
    ],
  },
  /** tdx_get_quote: a shared buffer goes to userspace. */
  gettingQuote: {
    always: [{ guard: 'quoteGpaPrivate', target: 'entering', actions: 'invalidOperand' }, { target: 'inUserspace', actions: 'exitTdxGetQuote' }],
  },
} as const;
