/**
 * Human-readable lines for messages and actor states: one line per delivered message with the key
 * register-level fields, every SPTE in full hex with its decoded meaning.
 */
import { decodeSpte } from '../arch/spte.ts';
import { septStateOf, septHpa } from '../arch/septEntry.ts';
import { hex, hex16 } from '../arch/hex.ts';
import { EXIT_REASON_NAMES } from '../arch/vmx.ts';
import { tdxStatusName } from '../arch/tdxStatus.ts';
import type { WalkStep } from '../protocol/messages.ts';

const SPTE_KEYS = new Set(['spte', 'oldSpte', 'newSpte', 'currentSpte']);
/** Fields implied by the actor names, or noise on a one-line summary. */
const SKIP_KEYS = new Set(['vcpu']);
/**
 * Numbers that are addresses, page frames, indexes, register words, MSR indexes or interrupt vectors read
 * best in hex (vector=0x30, msr=0x830, as the SDM and the kernel's irq_vectors.h write them).
 */
export function isHexNumberKey(key: string): boolean {
  return /(Pfn|Pa|^index|^valid|^septRoot|^port|^rvi|^svi|^tpr|^address_lo|^interrupts|^vector|^msr|^interruptionInfo|^data)$/.test(key);
}
const KIND_SUFFIX: Record<string, string> = {
  'td-exit': ' (TD exit)',
  'vm-exit': ' (VM exit)',
  'tdcall-return': ' (return)',
  'seamcall-return': ' (return)',
  'ioctl-return': ' (return)',
  'close-return': ' (return)',
  'kvm-call-return': ' (return)',
  'syscall-return': ' (return)',
};
/** Kinds whose name is a file or a kernel function: shown as the call (`close(kvm-gmem)`, `tdx_flush_vp()`). */
const fileName = (n: string, payload: unknown) => (n === 'kvm-vcpu' && payload !== null && typeof payload === 'object' && 'vcpu' in payload ? `kvm-vcpu:${String(payload.vcpu)}` : n);
const KIND_CALL: Record<string, (name: string, payload: unknown) => string> = {
  // A vCPU's anon inode is "kvm-vcpu:N".
  close: (n, p) => `close(${fileName(n, p)})`,
  'close-return': (n) => `close(${n})`,
  'kvm-call': (n) => `${n}()`,
  'kvm-call-return': (n) => `${n}()`,
  // fallocate(kvm-gmem) / ftruncate(kvm-gmem): the file is the guest_memfd of the payload's memslot.
  syscall: (n) => `${n}(kvm-gmem)`,
  'syscall-return': (n) => `${n}(kvm-gmem)`,
};

/** What the formatters need to know about the VM (its MMIO SPTE value, to recognise MMIO SPTEs). */
export interface FormatOptions {
  /** kvm->arch.shadow_mmio_value of the VM, to recognise MMIO SPTEs (§3.3). */
  mmioValue: bigint;
}

/** `0x8000fe000008 mmio gen=1 gpa=0x8000fe000000 SVE=0` and the like. */
export function describeSpte(spte: bigint, o: FormatOptions, pgLevel?: number): string {
  const f = decodeSpte(spte, { mmioValue: o.mmioValue, ...(pgLevel !== undefined ? { pgLevel } : {}) });
  const rwx = `${f.r ? 'R' : '-'}${f.w ? 'W' : '-'}${f.x ? 'X' : '-'}`;
  const sve = `SVE=${f.suppressVe ? 1 : 0}`;
  switch (f.kind) {
    case 'mmio':
      return `${hex16(spte)} mmio gen=${f.mmioGen} gpa=${f.mmioGpa} ${rwx} ${sve}`;
    case 'nonpresent':
      return `${hex16(spte)} non-present ${sve}`;
    case 'frozen':
      return `${hex16(spte)} FROZEN_SPTE`;
    case 'nonleaf':
      return `${hex16(spte)} non-leaf ${rwx} → pfn ${f.pfn} ${sve}`;
    case 'leaf':
      return `${hex16(spte)} leaf ${rwx} pfn ${f.pfn} mt=${f.memtype}${f.large ? ' large' : ''} ${sve}`;
    default:
      return `${hex16(spte)} ${rwx} ${sve}`;
  }
}

/** An S-EPT entry the TDX module reported: `0x80000002002000f7 MAPPED hpa=0x200200000` (§3.6, §5a.1). */
export function describeSeptEntry(entry: bigint): string {
  const state = septStateOf(entry);
  const hpa = septHpa(entry);
  return `${hex16(entry)} ${state}${hpa !== 0n ? ` hpa=${hex(hpa)}` : ''}`;
}

function value(key: string, v: unknown, o: FormatOptions, pgLevel?: number, secure = false): string {
  if (typeof v === 'bigint') {
    if (SPTE_KEYS.has(key)) return describeSpte(v, o, pgLevel);
    if (key === 'RAX' && v > 0xffffn) return `${hex(v)} (${tdxStatusName(v)})`;
    return hex(v);
  }
  if (typeof v === 'number' && isHexNumberKey(key)) return hex(v);
  if (key === 'exitReason' && typeof v === 'number') return `${v} (${EXIT_REASON_NAMES[v] ?? '?'})`;
  if (key === 'path' && Array.isArray(v)) {
    return (v as WalkStep[]).map((s) => `L${s.pgLevel}[${hex(s.index)}]=${secure ? describeSeptEntry(s.spte) : describeSpte(s.spte, o, s.pgLevel)}`).join(' | ');
  }
  if (v !== null && typeof v === 'object') {
    return '{' + Object.entries(v).filter(([, x]) => x !== null && x !== undefined).map(([k, x]) => `${k}=${value(k, x, o)}`).join(' ') + '}';
  }
  return String(v);
}

export function formatFields(payload: object, o: FormatOptions): string {
  const pgLevel = (payload as { pgLevel?: unknown }).pgLevel;
  // A walk of the Secure EPT returns the module's entries, whose meaning is their S-EPT state.
  const secure = (payload as { ept?: unknown }).ept === 'secure';
  return Object.entries(payload)
    .filter(([k, v]) => !SKIP_KEYS.has(k) && v !== null && v !== undefined)
    .map(([k, v]) => `${k}=${value(k, v, o, typeof pgLevel === 'number' ? pgLevel : undefined, secure)}`)
    .join(' ');
}

/** A message's architectural label as every view prints it: the name plus its kind's suffix (`EPT_VIOLATION (TD exit)`). */
export function messageLabel(m: { kind: string; name: string; payload?: unknown }): string {
  return `${KIND_CALL[m.kind]?.(m.name, m.payload) ?? m.name}${KIND_SUFFIX[m.kind] ?? ''}`;
}

/**
 * One delivered message as `tdxsim run` prints it: step, sender → receiver, architectural name, key register
 * fields, SPTEs and S-EPT entries decoded.
 */
export function formatDelivery(
  d: { seq: number; from: string; to: string; kind: string; name: string; payload: object },
  o: FormatOptions,
): string {
  const head = `${String(d.seq).padStart(5)}  ${d.from.padEnd(11)} → ${d.to.padEnd(11)}  ${messageLabel(d)}`;
  const fields = formatFields(d.payload, o);
  return fields ? `${head}  ${fields}` : head;
}
