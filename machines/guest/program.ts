/**
 * Guest instructions as data. Each instruction gets a RIP and an encoded length as x86 would lay it out,
 * because exits report RIP and VMX emulation advances RIP by the decoded length (§6.i contrast).
 */

export type GuestReg = 'rax' | 'rbx' | 'rcx' | 'rdx' | 'rsi' | 'rdi';
export const GUEST_REGS: readonly GuestReg[] = ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi'];
export type AccessSize = 1 | 2 | 4 | 8;

/** TDVMCALL output registers a program can copy into its own registers after the call. */
export type TdvmcallOutReg = 'r10' | 'r11' | 'r12' | 'r13' | 'r14' | 'r15';
export const TDVMCALL_OUT_REGS: readonly TdvmcallOutReg[] = ['r10', 'r11', 'r12', 'r13', 'r14', 'r15'];
/** TDG.VP.INFO output registers (§4.2). */
export type VpInfoOutReg = 'rcx' | 'rdx' | 'r8' | 'r9' | 'r10' | 'r11';
export const VP_INFO_OUT_REGS: readonly VpInfoOutReg[] = ['rcx', 'rdx', 'r8', 'r9', 'r10', 'r11'];

export type GuestOp =
  | { op: 'load'; gpa: bigint; gla: bigint; size: AccessSize; reg: GuestReg }
  | { op: 'store'; gpa: bigint; gla: bigint; size: AccessSize; value: bigint }
  /**
   * tdx_accept_memory(gpa, gpa + size): TDG.MEM.PAGE.ACCEPT in the largest sizes that fit (§6.ii A.1);
   * `fallback: false` is a guest that panics where Linux would try the next smaller size.
   */
  | { op: 'accept'; gpa: bigint; size: bigint; fallback?: boolean }
  /** tdx_map_gpa(gpa, gpa + size, to === 'private'): TDG.VP.VMCALL<MapGPA> with Linux's retry rule (§6.iv). */
  | { op: 'mapGpa'; gpa: bigint; size: bigint; to: 'shared' | 'private' }
  | { op: 'hlt' }
  /** `out dx, al/ax/eax` (§5c.3: a #VE in a TD) of a constant, or of a register's low bytes when `reg` is given. */
  | { op: 'out'; port: number; size: 1 | 2 | 4; value?: bigint; reg?: GuestReg }
  /** `in al/ax/eax, dx`: the #VE handler's TDG.VP.VMCALL<Instruction.IO> with R13 = 0; R11 lands in `reg` as IN does. */
  | { op: 'in'; port: number; size: 1 | 2 | 4; reg: GuestReg }
  /**
   * A TDG.VP.VMCALL issued directly with the registers given (a selftest's tdg_vp_vmcall_*): R10 (0 = GHCI),
   * R11 the sub-function, R12–R15; `results` copies output registers into program registers afterwards.
   */
  | { op: 'tdvmcall'; subfunction: number; r10: bigint; r12: bigint; r13: bigint; r14: bigint; r15: bigint; results: Partial<Record<TdvmcallOutReg, GuestReg>> }
  /** TDG.VP.INFO; `results` copies RCX, RDX, R8–R11 into program registers. */
  | { op: 'vpInfo'; results: Partial<Record<VpInfoOutReg, GuestReg>> }
  /**
   * A backward branch to instruction `to` (program index): taken until the body has run `times` times, or
   * until `until.reg` holds `until.equals` (checked after each pass), whichever comes first.
   */
  | { op: 'loop'; to: number; times?: number; until?: { reg: GuestReg; equals: bigint } }
  /** A guest-side assertion: `reg` must hold `equals`, or the run fails naming the RIP and both values. */
  | { op: 'check'; reg: GuestReg; equals: bigint };

export type PlacedInsn = GuestOp & { rip: bigint; length: number };

/** Kernel text base of an x86-64 Linux guest without KASLR; only used to give RIPs realistic values. */
export const GUEST_TEXT_BASE = 0xffffffff81000000n;

/** TDCALL is 66 0F 01 CC. */
export const TDCALL_LENGTH = 4;

/**
 * `check` and `loop` are laid out as `cmp reg, imm32` (REX.W 81 /7 id, 7 bytes) and a `jne rel8` (2 bytes);
 * a counted loop keeps its count where the model can see it rather than in a register.
 */
export const COMPARE_BRANCH_LENGTH = 9;

/**
 * Encoded length of `mov reg, [rdi]` / `mov [rdi], reg` at each width: 8A/8B/89 + ModRM = 2 bytes,
 * plus a 0x66 operand-size prefix for 16-bit or a REX.W prefix for 64-bit; HLT is F4.
 */
export function insnLength(op: GuestOp): number {
  if (op.op === 'hlt') return 1;
  // OUT DX, AL is EE, OUT DX, EAX is EF, OUT DX, AX is 66 EF; IN AL, DX is EC, IN EAX, DX is ED, IN AX, DX is 66 ED.
  if (op.op === 'out' || op.op === 'in') return op.size === 2 ? 2 : 1;
  if (op.op === 'accept' || op.op === 'mapGpa' || op.op === 'tdvmcall' || op.op === 'vpInfo') return TDCALL_LENGTH;
  if (op.op === 'check' || op.op === 'loop') return COMPARE_BRANCH_LENGTH;
  return op.size === 2 || op.size === 8 ? 3 : 2;
}

export function placeProgram(ops: readonly GuestOp[], base = GUEST_TEXT_BASE): PlacedInsn[] {
  let rip = base;
  return ops.map((op) => {
    const length = insnLength(op);
    const placed = { ...op, rip, length } as PlacedInsn;
    rip += BigInt(length);
    return placed;
  });
}

export function sizeMask(size: number): bigint {
  return (1n << BigInt(size * 8)) - 1n;
}

/**
 * Write a loaded value into a register the way MOV does: a 32-bit destination zero-extends into the full
 * register, 8- and 16-bit destinations merge into the low bytes, 64-bit replaces (Linux handle_mmio does
 * the same for the MMIO read it emulates).
 */
export function movToReg(old: bigint, size: number, value: bigint): bigint {
  const v = value & sizeMask(size);
  if (size === 4 || size === 8) return v;
  return (old & ~sizeMask(size)) | v;
}
