/**
 * The guest kernel's side of interrupts on a TD vCPU: the interrupt handler and the safe halt.
 *
 * A virtual interrupt arrives at an instruction boundary (machines/hw/cpu.ts) with RFLAGS.IF now 0; the
 * model's handler records the vector, acknowledges it with the x2APIC EOI write (WRMSR 0x80b, which the
 * CPU virtualizes for a TD) and returns with IRET, after which the CPU runs the instruction the interrupt
 * displaced. Whatever state the guest was in waits on, unchanged: the handler is two instructions the
 * guest issues in one step, and neither can be interrupted (IF is 0 until the IRET).
 *
 * `{ op: hlt, wait: true }` is Linux's tdx_safe_halt, called from the idle loop with interrupts disabled:
 * TDG.VP.VMCALL<Instruction.HLT> with R12 = 0 (the guest will take interrupts after the halt), then STI
 * (raw_local_irq_enable) once the TDCALL returns, so the interrupt that woke the vCPU is delivered next.
 * A plain `{ op: hlt }` halts for good with interrupts disabled, R12 = 1: only a signal ends it.
 */
import { out } from '../../src/protocol/messages.ts';
import type { PlacedInsn } from './program.ts';

/** Where the model lays the interrupt handler's EOI write and IRET (kernel text, after the #VE handler). */
export const INTERRUPT_HANDLER_TEXT = 0xffffffff81200000n;
/** WRMSR is 0F 30. */
export const WRMSR_LENGTH = 2;

/** TDVMCALL<Instruction.HLT> R12: 1 = interrupts blocked (a final HLT), 0 = tdx_safe_halt. */
export const hltInterruptBlockedFlag = (i: PlacedInsn) => (i.op === 'hlt' && i.wait === true ? 0n : 1n);

/** Where the model lays the NMI handler's IRET. */
export const NMI_HANDLER_TEXT = 0xffffffff81210000n;

export const nmiHandlerIret = (vcpu: number) => out(`hw.cpu${vcpu}`, 'insn', 'IRET', { vcpu, rip: NMI_HANDLER_TEXT });

/** The handler: EOI, then IRET (both to the vCPU's CPU, in order on one channel). */
export function interruptHandlerMessages(vcpu: number) {
  return [
    out(`hw.cpu${vcpu}`, 'insn', 'EOI', { vcpu, rip: INTERRUPT_HANDLER_TEXT }),
    out(`hw.cpu${vcpu}`, 'insn', 'IRET', { vcpu, rip: INTERRUPT_HANDLER_TEXT + BigInt(WRMSR_LENGTH) }),
  ];
}
