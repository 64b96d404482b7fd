/**
 * Kernel messages about TDX, from dmesg or from the printk:console tracepoint (`console: <text>`):
 *
 *   kvm_intel: SEAMCALL TDH_MEM_PAGE_AUG failed: 0x%llx[, <name> 0x%llx]…
 *       KVM's own print (arch/x86/kvm/vmx/tdx.c). v6.16's pr_tdx_error_N names the outputs `rcx`, `rdx`,
 *       `r8` (they hold the S-EPT entry and level/state for the memory SEAMCALLs); the later TDX_BUG_ON_N
 *       prints the variable names (`entry`, `level_state`), and its three-operand form writes `rdx, 0x…`.
 *   virt/tdx: SEAMCALL (0x%016llx) failed: 0x%016llx       (later `SEAMCALL (%llu) failed: …`)
 *   virt/tdx: RCX 0x… RDX 0x… R08 0x…  /  R09 0x… R10 0x… R11 0x…
 *       the core kernel's seamcall_err / seamcall_err_ret (arch/x86/virt/vmx/tdx/tdx.c): the function number
 *       is the leaf in bits 15:0 and its version in 23:16; the register dump follows on lines of its own.
 *   kvm_intel: TDH_VP_RD[%s.0x%x] failed 0x%llx  /  TDH_VP_WR[%s.0x%x]%s0x%llx failed: 0x%llx
 *   kvm_intel: Guest access before accepting 0x%llx on vCPU %d
 *       tdx_handle_ept_violation meeting a PENDING page with SEPT_VE_DISABLE (§6.ii B.3): the VM is dead.
 *
 * Statuses are named by src/arch/tdxStatus.ts, leaves by src/arch/seamcall.ts.
 */
import { SEAMCALL_LEAF_MASK, SEAMCALL_LEAF_NAMES, seamcallLeaf } from '../../arch/seamcall.ts';
import { tdxStatusName } from '../../arch/tdxStatus.ts';
import type { DataOf, TraceEventData } from '../traceEvent.ts';
import { hx, readHex } from './printf.ts';

const PREFIX = '(?:[\\w./-]+: )?';
const KVM_SEAMCALL = new RegExp(`^${PREFIX}SEAMCALL (TDH_[A-Z0-9_]+) failed: (0x[0-9a-fA-F]+)(.*)$`);
const VIRT_SEAMCALL = new RegExp(`^${PREFIX}SEAMCALL \\((0x[0-9a-fA-F]+|\\d+)\\) failed: (0x[0-9a-fA-F]+)$`);
const VP_RDWR = new RegExp(`^${PREFIX}(TDH_VP_(?:RD|WR))\\[(\\w+)\\.(0x[0-9a-fA-F]+)\\].*?failed:? (0x[0-9a-fA-F]+)$`);
const PENDING = /Guest access before accepting (0x[0-9a-fA-F]+) on vCPU (\d+)/;
const REG_DUMP = new RegExp(`^${PREFIX}((?:R[0-9A-Z]{2} 0x[0-9a-fA-F]+ ?){3})$`);
const OPERAND = /,\s*(\w+),?\s+(0x[0-9a-fA-F]+)/g;

function leafOf(name: string): { leafName: string | null; leaf: number | null } {
  const dotted = name.replace(/_/g, '.');
  try {
    return { leafName: dotted, leaf: seamcallLeaf(dotted) };
  } catch {
    return { leafName: null, leaf: null };
  }
}

function seamcallError(printed: string, leaf: { leafName: string | null; leaf: number | null }, status: bigint, operands: Record<string, bigint>, origin: 'kvm' | 'virt/tdx'): DataOf<'tdx_seamcall_error'> {
  return { name: 'tdx_seamcall_error', ...leaf, printed, status, statusName: tdxStatusName(status), operands, origin };
}

/** A kernel message decoded; anything not about TDX stays `printk`. */
export function parsePrintk(rawText: string): TraceEventData {
  // printk:console payloads may keep the `[    ts]` prefix of the console line.
  const text = rawText.trim().replace(/^\[\s*\d+\.\d+\]\s*/, '');
  const k = KVM_SEAMCALL.exec(text);
  if (k) {
    const operands: Record<string, bigint> = {};
    for (const m of k[3]!.matchAll(OPERAND)) operands[m[1]!] = readHex(m[2]!);
    return seamcallError(k[1]!, leafOf(k[1]!), readHex(k[2]!), operands, 'kvm');
  }
  const v = VIRT_SEAMCALL.exec(text);
  if (v) {
    const fn = /^0x/i.test(v[1]!) ? readHex(v[1]!) : BigInt(v[1]!);
    const n = Number(fn & BigInt(SEAMCALL_LEAF_MASK));
    const name = SEAMCALL_LEAF_NAMES[n];
    return seamcallError(v[1]!, { leafName: name ?? null, leaf: name === undefined ? null : n }, readHex(v[2]!), {}, 'virt/tdx');
  }
  const r = VP_RDWR.exec(text);
  if (r) return seamcallError(r[1]!, leafOf(r[1]!), readHex(r[4]!), { field: readHex(r[3]!) }, 'kvm');
  const p = PENDING.exec(text);
  if (p) return { name: 'tdx_pending_access', gpa: readHex(p[1]!), vcpu: Number(p[2]) };
  return { name: 'printk', text };
}

/** `RCX 0x… RDX 0x… R08 0x…`: the register dump seamcall_err_ret prints after its first line. */
export function parseRegisterDump(rawText: string): Record<string, bigint> | null {
  const m = REG_DUMP.exec(rawText.trim());
  if (!m) return null;
  const regs: Record<string, bigint> = {};
  for (const [, reg, val] of m[1]!.matchAll(/(R[0-9A-Z]{2}) (0x[0-9a-fA-F]+)/g)) regs[reg!.toLowerCase()] = readHex(val!);
  return regs;
}

/** The line KVM prints, in its current (TDX_BUG_ON) wording. */
export function formatPrintk(d: DataOf<'tdx_seamcall_error'> | DataOf<'tdx_pending_access'> | DataOf<'printk'>): string {
  switch (d.name) {
    case 'tdx_seamcall_error': {
      const ops = Object.entries(d.operands).map(([n, v]) => `, ${n} ${hx(v)}`).join('');
      return `kvm_intel: SEAMCALL ${d.printed} failed: ${hx(d.status)}${ops}`;
    }
    case 'tdx_pending_access':
      return `kvm_intel: Guest access before accepting ${hx(d.gpa)} on vCPU ${d.vcpu}`;
    case 'printk':
      return d.text;
  }
}
