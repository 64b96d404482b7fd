/**
 * The TDX module (SEAM): SEAMCALLs from KVM, TDCALLs from the guest, and the VM exits the CPU delivers
 * while a TD runs. Its statechart is the TD's op_state (§5b.1); the per-vCPU TDVPS bits it needs between
 * messages (vCPU state, last exit type, the exposed-GPR bitmap of a pending TDVMCALL) live in context.
 *
 * This slice carries the MMIO flows: TDH.VP.ENTER → VMLAUNCH/VMRESUME (§5c.2), a shared-GPA EPT violation
 * → TD exit with the exit qualification's bits 12:7 and the GPA's bits 11:0 cleared and EEQ NONE (§6.i 3),
 * TDG.VP.VEINFO.GET (§4.2), and TDG.VP.VMCALL → trap-like TD exit TDCALL with the exposed GPRs (§4.3,
 * §6.i 10). The S-EPT itself is the module's; until private memory is modelled it is an empty tree whose
 * root entries are FREE, which the module reports as just the suppress-#VE bit (§5a.4).
 */
import { setup, assign, emit } from 'xstate';
import { out, payloadOf, type MachineEvent, type Outgoing, type Gprs } from '../../src/protocol/messages.ts';
import type { FailureSignal, UnexpectedSignal } from '../../src/runtime/step.ts';
import { EXIT_REASON_EPT_VIOLATION, EXIT_REASON_EPT_MISCONFIG, EXIT_REASON_TDCALL, TDX_EXIT_QUAL_CLEARED_BITS } from '../../src/arch/vmx.ts';
import { TDX_SUCCESS, TDX_NO_VALID_VE_INFO, TDX_EXT_EXIT_QUAL_TYPE_NONE, makeEeq, TD_ATTR_SEPT_VE_DISABLE, TD_CTLS_PENDING_VE_DISABLE } from '../../src/arch/tdxStatus.ts';
import { VMX_EPT_SUPPRESS_VE_BIT } from '../../src/arch/spte.ts';
import { sharedBit, eptLevels, pgLevelIndex, PAGE_SIZE } from '../../src/arch/gpa.ts';

export interface TdxModuleInput {
  gpaw: 48 | 52;
  attributes: bigint;
  tdrPa: bigint;
  /** TDVPR page of each vCPU, indexed by vCPU number. */
  tdvpr: readonly bigint[];
}

/** TDVPS state the model needs between messages (§1.3, §5b.1). */
export interface TdVcpu {
  tdvpr: bigint;
  /** TDVPS vCPU state: READY between TD exits, ACTIVE while in TD non-root. */
  state: 'READY' | 'ACTIVE';
  /** VMLAUNCH the first time, VMRESUME after. */
  launched: boolean;
  /** TDVPS last TD exit type (§5b.1): decides whether TDH.VP.ENTER copies TDVMCALL outputs back. */
  lastExit: 'ASYNC_FAULT' | 'ASYNC_TRAP' | 'TDVMCALL' | null;
  /** RCX of the pending TDVMCALL: which GPRs the guest exposed (§4.3). */
  exposeMask: bigint;
}

export interface TdxModuleContext {
  gpaw: 48 | 52;
  sharedMask: bigint;
  attributes: bigint;
  /** TD_CTLS; TDH.MNG.INIT sets PENDING_VE_DISABLE from ATTRIBUTES.SEPT_VE_DISABLE (§4.11). */
  tdCtls: bigint;
  tdrPa: bigint;
  vcpus: TdVcpu[];
}

type Emitted = Outgoing | FailureSignal | UnexpectedSignal;

const kvm = (v: number) => `kvm.vcpu${v}`;
const guest = (v: number) => `guest.vcpu${v}`;
const vcpuOf = (ev: MachineEvent): number => (ev.msg.payload as { vcpu: number }).vcpu;
const PAGE_MASK = ~(PAGE_SIZE - 1n);
const GPR_BITS = { R10: 10n, R11: 11n, R12: 12n, R13: 13n, R14: 14n, R15: 15n } as const;

/** Keep only the GPRs whose bit is set in a TDVMCALL's RCX bitmap (§4.3, §5c.2 step 6). */
function exposed(mask: bigint, regs: Gprs): Gprs {
  const r: Gprs = {};
  for (const [name, bit] of Object.entries(GPR_BITS) as [keyof typeof GPR_BITS, bigint][]) {
    if ((mask >> bit) & 1n && regs[name] !== undefined) r[name] = regs[name];
  }
  return r;
}

function withVcpu(c: TdxModuleContext, v: number, patch: Partial<TdVcpu>): TdVcpu[] {
  const vcpus = c.vcpus.slice();
  vcpus[v] = { ...vcpus[v]!, ...patch };
  return vcpus;
}

export const tdxModuleMachine = setup({
  types: {
    context: {} as TdxModuleContext,
    events: {} as MachineEvent,
    input: {} as TdxModuleInput,
    emitted: {} as Emitted,
  },
  guards: {
    vcpuReady: ({ context, event }) => context.vcpus[vcpuOf(event)]?.state === 'READY',
    sharedGpa: ({ context, event }) => ((event.msg.payload as { gpa: bigint }).gpa & context.sharedMask) !== 0n,
  },
  actions: {
    /** §5c.2: associate, enter; after a TDVMCALL exit the VMM's outputs go back into the guest's GPRs. */
    vmEntry: emit(({ context, event }) => {
      const p = payloadOf(event, 'seamcall', 'TDH.VP.ENTER');
      const vc = context.vcpus[p.vcpu]!;
      const tdcallReturn = vc.lastExit === 'TDVMCALL' ? { RAX: TDX_SUCCESS, ...exposed(vc.exposeMask, p) } : null;
      return out(guest(p.vcpu), 'vm-entry', vc.launched ? 'VMRESUME' : 'VMLAUNCH', { vcpu: p.vcpu, tdcallReturn, emulated: null });
    }),
    markActive: assign({ vcpus: ({ context, event }) => withVcpu(context, vcpuOf(event), { state: 'ACTIVE', launched: true }) }),
    /** §6.i step 3: shared GPA → TD exit EPT_VIOLATION, RCX = qualification & ~bits 12:7, RDX = EEQ NONE, R8 = GPA & ~0xFFF. */
    tdExitEptViolation: emit(({ event }) => {
      const x = payloadOf(event, 'vm-exit', 'EPT_VIOLATION');
      return out(kvm(x.vcpu), 'td-exit', 'EPT_VIOLATION', {
        vcpu: x.vcpu,
        RAX: TDX_SUCCESS | BigInt(EXIT_REASON_EPT_VIOLATION),
        RCX: x.exitQualification & ~BigInt(TDX_EXIT_QUAL_CLEARED_BITS),
        RDX: makeEeq(TDX_EXT_EXIT_QUAL_TYPE_NONE),
        R8: x.gpa & PAGE_MASK,
        R9: 0n,
      });
    }),
    /** §2: EPT misconfiguration on a shared GPA is a TD exit (reason 49, GPA bits 11:0 cleared). */
    tdExitEptMisconfig: emit(({ event }) => {
      const x = payloadOf(event, 'vm-exit', 'EPT_MISCONFIG');
      return out(kvm(x.vcpu), 'td-exit', 'EPT_MISCONFIG', { vcpu: x.vcpu, RAX: TDX_SUCCESS | BigInt(EXIT_REASON_EPT_MISCONFIG), RCX: 0n, RDX: 0n, R8: x.gpa & PAGE_MASK, R9: 0n });
    }),
    /** §2: on a private GPA an EPT misconfiguration is a fatal TDX-module error. */
    fatalPrivateMisconfig: emit(({ event }): Emitted => ({
      type: 'tdxsim.failure',
      reason: 'TDX module fatal error',
      detail: `EPT misconfiguration on private GPA 0x${payloadOf(event, 'vm-exit', 'EPT_MISCONFIG').gpa.toString(16)}`,
    })),
    markExitedFault: assign({ vcpus: ({ context, event }) => withVcpu(context, vcpuOf(event), { state: 'READY', lastExit: 'ASYNC_FAULT' }) }),
    /** The VE information area is read through the CPU that owns it (see machines/hw/cpu.ts). */
    readVeInfo: emit(({ event }) => out(`hw.cpu${vcpuOf(event)}`, 've-info', 'VE_INFO_GET', { vcpu: vcpuOf(event) })),
    /** §4.2: RCX exit reason, RDX qualification, R8 GLA, R9 GPA, R10 instruction length/info (not saved for EPT violations). */
    returnVeInfo: emit(({ event }) => {
      const v = payloadOf(event, 've-info', 'VE_INFO');
      const regs: Gprs =
        v.valid === 0 ? { RAX: TDX_NO_VALID_VE_INFO } : { RAX: TDX_SUCCESS, RCX: BigInt(v.exitReason), RDX: v.exitQualification, R8: v.gla, R9: v.gpa, R10: 0n };
      return out(guest(v.vcpu), 'tdcall-return', 'TDG.VP.VEINFO.GET', { vcpu: v.vcpu, ...regs });
    }),
    /** §6.i step 10: validate nothing more than Linux can violate, copy exposed GPRs, trap-like TD exit 77. */
    tdExitTdvmcall: emit(({ event }) => {
      const p = event.msg.payload as Gprs & { vcpu: number };
      return out(kvm(p.vcpu), 'td-exit', 'TDCALL', { vcpu: p.vcpu, RAX: TDX_SUCCESS | BigInt(EXIT_REASON_TDCALL), RCX: p.RCX!, ...exposed(p.RCX!, p) });
    }),
    markExitedTdvmcall: assign({
      vcpus: ({ context, event }) => withVcpu(context, vcpuOf(event), { state: 'READY', lastExit: 'TDVMCALL', exposeMask: (event.msg.payload as Gprs).RCX! }),
    }),
    /** Walks of the S-EPT: the tree is empty, so the walk stops at a FREE root entry (SVE only). */
    answerSeptWalk: emit(({ context, event }) => {
      const w = payloadOf(event, 'ept-walk', 'EPT_WALK');
      const level = eptLevels(context.gpaw);
      return out(`hw.cpu${w.vcpu}`, 'ept-walk', 'EPT_WALK_RESULT', {
        vcpu: w.vcpu,
        ept: w.ept,
        gpa: w.gpa,
        path: [{ pgLevel: level, tablePfn: 0, index: pgLevelIndex(w.gpa, level), spte: VMX_EPT_SUPPRESS_VE_BIT }],
      });
    }),
    notReady: emit(({ event }): Emitted => ({
      type: 'tdxsim.failure',
      reason: 'KVM bug',
      detail: `TDH.VP.ENTER for vCPU ${vcpuOf(event)} which is not READY (already in TD non-root)`,
    })),
    unexpected: emit((): Emitted => ({ type: 'tdxsim.unexpected' })),
  },
}).createMachine({
  id: 'tdxModule',
  context: ({ input }) => ({
    gpaw: input.gpaw,
    sharedMask: sharedBit(input.gpaw),
    attributes: input.attributes,
    tdCtls: (input.attributes & TD_ATTR_SEPT_VE_DISABLE) !== 0n ? TD_CTLS_PENDING_VE_DISABLE : 0n,
    tdrPa: input.tdrPa,
    vcpus: input.tdvpr.map((tdvpr) => ({ tdvpr, state: 'READY' as const, launched: false, lastExit: null, exposeMask: 0n })),
  }),
  initial: 'runnable',
  on: { '*': { actions: 'unexpected' } },
  states: {
    /** op_state RUNNABLE: after TDH.MR.FINALIZE; TDH.VP.ENTER is allowed (§5b.1). */
    runnable: {
      on: {
        'TDH.VP.ENTER': [{ guard: 'vcpuReady', actions: ['vmEntry', 'markActive'] }, { actions: 'notReady' }],
        // A private EPT violation on a FREE/absent S-EPT entry is a TD exit with EEQ NONE too (§5a.6).
        EPT_VIOLATION: { actions: ['tdExitEptViolation', 'markExitedFault'] },
        EPT_MISCONFIG: [{ guard: 'sharedGpa', actions: ['tdExitEptMisconfig', 'markExitedFault'] }, { actions: 'fatalPrivateMisconfig' }],
        'TDG.VP.VEINFO.GET': { actions: 'readVeInfo' },
        VE_INFO: { actions: 'returnVeInfo' },
        'TDG.VP.VMCALL<#VE.RequestMMIO>': { actions: ['tdExitTdvmcall', 'markExitedTdvmcall'] },
        'TDG.VP.VMCALL<Instruction.HLT>': { actions: ['tdExitTdvmcall', 'markExitedTdvmcall'] },
        EPT_WALK: { actions: 'answerSeptWalk' },
      },
    },
  },
});
