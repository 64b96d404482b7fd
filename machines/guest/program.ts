/**
 * Guest instructions as data. Each instruction gets a RIP and an encoded length as x86 would lay it out,
 * because exits report RIP and VMX emulation advances RIP by the decoded length (§6.i contrast).
 */

export type GuestReg = 'rax' | 'rbx' | 'rcx' | 'rdx' | 'rsi' | 'rdi';
export const GUEST_REGS: readonly GuestReg[] = ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi'];
export type AccessSize = 1 | 2 | 4 | 8;

/** Guest contexts in which a #VE cannot be handled (Documentation/arch/x86/tdx.rst, "#VE on memory accesses"). */
export type UnsafeContext = 'syscall-gap' | 'nmi-entry';
export const UNSAFE_CONTEXTS: readonly UnsafeContext[] = ['syscall-gap', 'nmi-entry'];
/** TDVMCALL output registers a program can copy into its own registers after the call. */
export type TdvmcallOutReg = 'r10' | 'r11' | 'r12' | 'r13' | 'r14' | 'r15';
export const TDVMCALL_OUT_REGS: readonly TdvmcallOutReg[] = ['r10', 'r11', 'r12', 'r13', 'r14', 'r15'];
/** TDG.VP.INFO output registers (§4.2). */
export type VpInfoOutReg = 'rcx' | 'rdx' | 'r8' | 'r9' | 'r10' | 'r11';
export const VP_INFO_OUT_REGS: readonly VpInfoOutReg[] = ['rcx', 'rdx', 'r8', 'r9', 'r10', 'r11'];

export type GuestOp =
  /** `paged`: `gla` is translated through the guest page tables, and the PTE decides the GPA (and its shared bit). */
  | { op: 'load'; gpa: bigint; gla: bigint; size: AccessSize; reg: GuestReg; paged?: boolean }
  | { op: 'store'; gpa: bigint; gla: bigint; size: AccessSize; value: bigint; paged?: boolean }
  /**
   * load_unaligned_zeropad(va): an 8-byte load whose last 4 bytes lie in the next page; a fault on that page
   * is fixed up by returning the bytes of the first page, zero-extended (ex_handler_zeropad).
   */
  | { op: 'loadUnalignedZeropad'; gla: bigint; reg: GuestReg }
  /**
   * `while (READ_ONCE(*flag) != value) ;` — a guest memory word another vCPU sets: a load, a compare and a
   * jump back, repeated until the loaded value matches (the loaded value stays in `reg`).
   */
  | { op: 'spinUntil'; gpa: bigint; gla: bigint; size: AccessSize; value: bigint; reg: GuestReg; paged?: boolean }
  /** accept_memory(gpa, gpa + size): the lazy accept of unaccepted memory (drivers/firmware/efi/unaccepted_memory.c). */
  | { op: 'acceptMemory'; gpa: bigint; size: bigint }
  /** set_memory_encrypted / set_memory_decrypted(va, pages) on the direct map, in Linux's order (§6.iv). */
  | { op: 'setMemoryEncrypted'; gla: bigint; pages: number }
  | { op: 'setMemoryDecrypted'; gla: bigint; pages: number }
  /** Markers, not instructions: the vCPU enters or leaves a context where a #VE cannot be handled. */
  | { op: 'enterContext'; context: UnsafeContext }
  | { op: 'leaveContext' }
  /**
   * tdx_accept_memory(gpa, gpa + size): TDG.MEM.PAGE.ACCEPT in the largest sizes that fit (§6.ii A.1);
   * `fallback: false` is a guest that panics where Linux would try the next smaller size.
   */
  | { op: 'accept'; gpa: bigint; size: bigint; fallback?: boolean }
  /** tdx_map_gpa(gpa, gpa + size, to === 'private'): TDG.VP.VMCALL<MapGPA> with Linux's retry rule (§6.iv). */
  | { op: 'mapGpa'; gpa: bigint; size: bigint; to: 'shared' | 'private' }
  /** `wait`: Linux's tdx_safe_halt (R12 = 0, STI after it returns); without: halt with interrupts blocked (machines/guest/interrupts.ts). */
  | { op: 'hlt'; wait?: boolean }
  /**
   * Linux's x2APIC send of a fixed IPI in physical mode (native_x2apic_icr_write): WRMSR of the ICR (0x830)
   * with the destination's x2APIC ID (= its vCPU index) in bits 63:32 and `vector` in 7:0. Not virtualized
   * for a TD: a #VE, which the guest turns into TDG.VP.VMCALL<Instruction.WRMSR> (interrupts.ts).
   */
  | { op: 'ipi'; to: number; vector: number }
  /** RFLAGS.IF = 1 / 0 (FB / FA). */
  | { op: 'sti' }
  | { op: 'cli' }
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

/** `call rel32` is E8 + 4 bytes. */
export const CALL_REL32_LENGTH = 5;

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
  if (op.op === 'hlt' || op.op === 'sti' || op.op === 'cli') return 1;
  // WRMSR is 0F 30.
  if (op.op === 'ipi') return 2;
  // OUT DX, AL is EE, OUT DX, EAX is EF, OUT DX, AX is 66 EF; IN AL, DX is EC, IN EAX, DX is ED, IN AX, DX is 66 ED.
  if (op.op === 'out' || op.op === 'in') return op.size === 2 ? 2 : 1;
  if (op.op === 'accept' || op.op === 'mapGpa' || op.op === 'tdvmcall' || op.op === 'vpInfo') return TDCALL_LENGTH;
  if (op.op === 'check' || op.op === 'loop') return COMPARE_BRANCH_LENGTH;
  // A call of the kernel function: E8 rel32.
  if (op.op === 'acceptMemory' || op.op === 'setMemoryEncrypted' || op.op === 'setMemoryDecrypted') return CALL_REL32_LENGTH;
  if (op.op === 'enterContext' || op.op === 'leaveContext') return 0;
  // mov rax, [rdi]: REX.W 8B /r.
  if (op.op === 'loadUnalignedZeropad') return 3;
  // The loop: mov, then cmp with an immediate (3C ib, 66 3D iw, 3D id, REX.W 3D id), then jne rel8 (75 cb).
  if (op.op === 'spinUntil') return movLength(op.size) + [0, 2, 4, 0, 5, 0, 0, 0, 6][op.size]! + 2;
  return movLength(op.size);
}

/** `mov reg, [rdi]` / `mov [rdi], reg`: opcode + ModRM, plus 0x66 for 16-bit or REX.W for 64-bit. */
const movLength = (size: AccessSize): number => (size === 2 || size === 8 ? 3 : 2);

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
