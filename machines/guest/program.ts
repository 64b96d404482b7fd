/**
 * Guest instructions as data. Each instruction gets a RIP and an encoded length as x86 would lay it out,
 * because exits report RIP and VMX emulation advances RIP by the decoded length (§6.i contrast).
 */

export type GuestReg = 'rax' | 'rbx' | 'rcx' | 'rdx' | 'rsi' | 'rdi';
export const GUEST_REGS: readonly GuestReg[] = ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi'];
export type AccessSize = 1 | 2 | 4 | 8;

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
  /** `out dx, al/ax/eax` (§5c.3: a #VE in a TD). */
  | { op: 'out'; port: number; size: 1 | 2 | 4; value: bigint };

export type PlacedInsn = GuestOp & { rip: bigint; length: number };

/** Kernel text base of an x86-64 Linux guest without KASLR; only used to give RIPs realistic values. */
export const GUEST_TEXT_BASE = 0xffffffff81000000n;

/** TDCALL is 66 0F 01 CC. */
export const TDCALL_LENGTH = 4;

/**
 * Encoded length of `mov reg, [rdi]` / `mov [rdi], reg` at each width: 8A/8B/89 + ModRM = 2 bytes,
 * plus a 0x66 operand-size prefix for 16-bit or a REX.W prefix for 64-bit; HLT is F4.
 */
export function insnLength(op: GuestOp): number {
  if (op.op === 'hlt') return 1;
  // OUT DX, AL is EE, OUT DX, EAX is EF, OUT DX, AX is 66 EF.
  if (op.op === 'out') return op.size === 2 ? 2 : 1;
  if (op.op === 'accept' || op.op === 'mapGpa') return TDCALL_LENGTH;
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
