/**
 * kvm:kvm_exit (arch/x86/kvm/trace.h), in the layouts it has had:
 *
 *   oldest   `reason %s rip 0x%lx info %llx %llx`            (info1/info2 without prefix, no vCPU)
 *   v5.10+   `vcpu %u reason %s%s%s rip 0x%lx info1 0x%016llx info2 0x%016llx intr_info 0x%08x error_code 0x%08x`
 *            (the kernels in between printed the info1… part without `vcpu %u`)
 *
 * The reason is `__print_symbolic(reason & 0xffff, VMX_EXIT_REASONS)`, then a space and
 * `__print_flags(reason & ~0xffff, " ", VMX_EXIT_REASON_FLAGS)` when high bits are set — so an unknown basic
 * reason prints in hex (`0x4d` for TDCALL before VMX_EXIT_REASONS listed it), TDH.VP.ENTER's BUSY (exit
 * reason -1) prints `0xffff FAILED_VMENTRY 0x7fff0000`, and an AMD host prints SVM names (`npf`, `io`).
 * For a TD, KVM fills the fields in tdx_get_exit_info: info1 = the exit qualification (RCX of the TD exit),
 * info2 = the extended exit qualification (RDX), intr_info = R9, error_code = 0; the reason is KVM's view
 * after tdx_to_vmx_exit_reason (a TDVMCALL<#VE.RequestMMIO> is EPT_MISCONFIG, <Instruction.HLT> is HLT).
 */
import { EXIT_REASON_BASIC_MASK, EXIT_REASON_NAMES, VMX_EXIT_REASONS_FAILED_VMENTRY } from '../../arch/vmx.ts';
import type { Tracepoint } from './tracepoint.ts';
import { hx, hxPad, readHex } from './printf.ts';

const REASON_BY_NAME: ReadonlyMap<string, number> = new Map(Object.entries(EXIT_REASON_NAMES).map(([n, name]) => [name, Number(n)]));
const FLAG_NAMES: ReadonlyMap<string, number> = new Map([['FAILED_VMENTRY', VMX_EXIT_REASONS_FAILED_VMENTRY]]);

const HEAD = /^(?:vcpu (\d+) )?reason (.+?) rip (0x[0-9a-fA-F]+) (.*)$/;
const INFO_OLD = /^info ([0-9a-fA-F]+) ([0-9a-fA-F]+)$/;
const INFO_NEW = /^info1 (0x[0-9a-fA-F]+) info2 (0x[0-9a-fA-F]+)(?: intr_info (0x[0-9a-fA-F]+) error_code (0x[0-9a-fA-F]+))?$/;

function parseReason(text: string): { reason: number | null; reasonName: string; flags: string[]; isa: 'vmx' | 'svm' } | null {
  const [basic, ...flags] = text.split(' ').filter((t) => t !== '');
  if (basic === undefined) return null;
  let reason: number | null;
  let isa: 'vmx' | 'svm' = 'vmx';
  if (/^0x[0-9a-fA-F]+$/.test(basic)) reason = Number(basic);
  else if (REASON_BY_NAME.has(basic)) reason = REASON_BY_NAME.get(basic)!;
  else {
    reason = null;
    // SVM_EXIT_REASONS are lower case (`npf`, `vmmcall`); VMX names are upper case.
    if (/[a-z]/.test(basic)) isa = 'svm';
  }
  for (const f of flags) {
    if (reason === null) break;
    if (FLAG_NAMES.has(f)) reason = (reason | FLAG_NAMES.get(f)!) >>> 0;
    else if (/^0x[0-9a-fA-F]+$/.test(f)) reason = (reason | Number(f)) >>> 0;
    else return null;
  }
  return { reason, reasonName: basic, flags, isa };
}

/** The reason as kvm_print_exit_reason prints a VMX one. */
export function formatExitReason(reason: number): string {
  const basic = reason & EXIT_REASON_BASIC_MASK;
  const name = EXIT_REASON_NAMES[basic] ?? hx(basic);
  let high = (reason & ~EXIT_REASON_BASIC_MASK) >>> 0;
  if (high === 0) return name;
  const parts: string[] = [];
  for (const [flag, mask] of FLAG_NAMES) {
    if ((high & mask) >>> 0 === mask) {
      parts.push(flag);
      high = (high & ~mask) >>> 0;
    }
  }
  if (high !== 0) parts.push(hx(high));
  return `${name} ${parts.join(' ')}`;
}

export const kvmExit: Tracepoint<'kvm_exit'> = {
  event: 'kvm_exit',
  parse(payload) {
    const m = HEAD.exec(payload.trim());
    if (!m) return null;
    const r = parseReason(m[2]!);
    if (r === null) return null;
    const vcpu = m[1] === undefined ? null : Number(m[1]);
    const rip = readHex(m[3]!);
    const old = INFO_OLD.exec(m[4]!);
    if (old) return { name: 'kvm_exit', vcpu, ...r, rip, info1: readHex(old[1]!), info2: readHex(old[2]!), intrInfo: null, errorCode: null, layout: 'info' };
    const n = INFO_NEW.exec(m[4]!);
    if (!n) return null;
    return {
      name: 'kvm_exit',
      vcpu,
      ...r,
      rip,
      info1: readHex(n[1]!),
      info2: readHex(n[2]!),
      intrInfo: n[3] === undefined ? null : Number(n[3]),
      errorCode: n[4] === undefined ? null : Number(n[4]),
      layout: 'info1',
    };
  },
  format(d) {
    const reason = d.reason === null ? [d.reasonName, ...d.flags].join(' ') : formatExitReason(d.reason);
    return `vcpu ${d.vcpu ?? 0} reason ${reason} rip ${hx(d.rip)} info1 ${hxPad(d.info1, 16)} info2 ${hxPad(d.info2, 16)} intr_info ${hxPad(d.intrInfo ?? 0, 8)} error_code ${hxPad(d.errorCode ?? 0, 8)}`;
  },
};
