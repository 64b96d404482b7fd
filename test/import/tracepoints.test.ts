/** Each tracepoint's payload in the layouts kernels have printed, and the TDX messages of dmesg. */
import { describe, expect, it } from 'vitest';
import { formatPayload, parsePayload } from '../../src/import/tracepoints/registry.ts';
import { parseRegisterDump } from '../../src/import/tracepoints/tdxPrintk.ts';
import { parseTraceText } from '../../src/import/parseTrace.ts';
import { TDX_TLB_TRACKING_NOT_DONE } from '../../src/arch/tdxStatus.ts';
import { EXIT_REASON_EPT_VIOLATION, EXIT_REASON_TDCALL, VMX_EXIT_REASONS_FAILED_VMENTRY } from '../../src/arch/vmx.ts';
import { seamcallLeaf } from '../../src/arch/seamcall.ts';

describe('kvm_exit in its three layouts', () => {
  it('the oldest: reason, rip, info without prefix, no vCPU', () => {
    expect(parsePayload('kvm_exit', 'reason EPT_VIOLATION rip 0xffffffff81000000 info 181 0')).toMatchObject({
      vcpu: null,
      reason: EXIT_REASON_EPT_VIOLATION,
      rip: 0xffffffff81000000n,
      info1: 0x181n,
      info2: 0n,
      intrInfo: null,
      errorCode: null,
      layout: 'info',
    });
  });

  it('info1/info2/intr_info/error_code, without and with the vCPU', () => {
    const mid = 'reason EXTERNAL_INTERRUPT rip 0xffffffff81001234 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x800000ec error_code 0x00000000';
    expect(parsePayload('kvm_exit', mid)).toMatchObject({ vcpu: null, reasonName: 'EXTERNAL_INTERRUPT', intrInfo: 0x800000ec, errorCode: 0, layout: 'info1' });
    const td = 'vcpu 3 reason EPT_VIOLATION rip 0x0 info1 0x0000000000000002 info2 0x0000408800000001 intr_info 0x00000000 error_code 0x00000000';
    expect(parsePayload('kvm_exit', td)).toMatchObject({ vcpu: 3, reason: EXIT_REASON_EPT_VIOLATION, info1: 2n, info2: 0x408800000001n });
  });

  it('the reason as __print_symbolic/__print_flags print it: a name, hex before VMX_EXIT_REASONS knew TDCALL, flags, SVM names', () => {
    const tail = 'rip 0x0 info1 0x000000000000ffcc info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000';
    expect(parsePayload('kvm_exit', `vcpu 0 reason 0x4d ${tail}`)).toMatchObject({ reason: EXIT_REASON_TDCALL, reasonName: '0x4d', isa: 'vmx' });
    expect(parsePayload('kvm_exit', `vcpu 0 reason TDCALL ${tail}`)).toMatchObject({ reason: EXIT_REASON_TDCALL });
    // TDH.VP.ENTER refused with BUSY: KVM's exit reason is -1.
    expect(parsePayload('kvm_exit', `vcpu 0 reason 0xffff FAILED_VMENTRY 0x7fff0000 ${tail}`)).toMatchObject({ reason: 0xffffffff, flags: ['FAILED_VMENTRY', '0x7fff0000'] });
    expect(parsePayload('kvm_exit', `vcpu 0 reason EPT_VIOLATION FAILED_VMENTRY ${tail}`)).toMatchObject({ reason: (EXIT_REASON_EPT_VIOLATION | VMX_EXIT_REASONS_FAILED_VMENTRY) >>> 0 });
    expect(parsePayload('kvm_exit', `vcpu 0 reason npf ${tail}`)).toMatchObject({ isa: 'svm', reason: null, reasonName: 'npf' });
  });

  it('prints the newest layout, flags included, and reads it back', () => {
    const d = parsePayload('kvm_exit', 'vcpu 0 reason 0xffff FAILED_VMENTRY 0x7fff0000 rip 0x0 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000')!;
    expect(formatPayload(d).payload).toBe('vcpu 0 reason 0xffff FAILED_VMENTRY 0x7fff0000 rip 0x0 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000');
  });

  it('a payload matching no layout is malformed (null)', () => {
    expect(parsePayload('kvm_exit', 'vcpu 0 reason EPT_VIOLATION rip zero')).toBeNull();
  });
});

describe('the other kvm and kvmmmu tracepoints', () => {
  it('kvm_entry: vcpu only, with rip, with [immediate exit]', () => {
    expect(parsePayload('kvm_entry', 'vcpu 2')).toEqual({ name: 'kvm_entry', vcpu: 2, rip: null, immediateExit: false });
    expect(parsePayload('kvm_entry', 'vcpu 2, rip 0xffffffff81000004')).toMatchObject({ rip: 0xffffffff81000004n, immediateExit: false });
    expect(parsePayload('kvm_entry', 'vcpu 2, rip 0x0[immediate exit]')).toMatchObject({ rip: 0n, immediateExit: true });
  });

  it('kvm_page_fault: old (address %lx error_code %x) and new (vcpu, rip, 64-bit)', () => {
    expect(parsePayload('kvm_page_fault', 'address 800000200000 error_code 1')).toMatchObject({ vcpu: null, address: 0x800000200000n, errorCode: 1n, layout: 'old' });
    expect(parsePayload('kvm_page_fault', 'vcpu 1 rip 0x0 address 0x0000000000201000 error_code 0x2')).toMatchObject({ vcpu: 1, address: 0x201000n, errorCode: 2n, layout: 'new' });
  });

  it('kvm_userspace_exit: named, in hex past the tracepoint\'s table, restart and error', () => {
    expect(parsePayload('kvm_userspace_exit', 'reason KVM_EXIT_HYPERCALL (3)')).toMatchObject({ reason: 3, errno: null });
    expect(parsePayload('kvm_userspace_exit', 'reason 0x27 (39)')).toMatchObject({ reason: 39 });
    expect(parsePayload('kvm_userspace_exit', 'reason restart (4)')).toMatchObject({ reason: null, errno: -4 });
    expect(parsePayload('kvm_userspace_exit', 'reason error (5)')).toMatchObject({ errno: -5 });
    expect(formatPayload({ name: 'kvm_userspace_exit', reason: 39, reasonName: '', errno: null }).payload).toBe('reason 0x27 (39)');
  });

  it('kvm_pio with and without the value; kvm_mmio; kvm_hypercall; memory attributes in both wordings', () => {
    expect(parsePayload('kvm_pio', 'pio_write at 0x604 size 2 count 1')).toMatchObject({ rw: 'write', port: 0x604, val: null });
    expect(parsePayload('kvm_pio', 'pio_write at 0x604 size 2 count 1 val 0x2000 ')).toMatchObject({ val: 0x2000 });
    expect(parsePayload('kvm_pio', 'pio_read at 0x60 size 1 count 4 val 0x12 (...)')).toMatchObject({ rw: 'read', count: 4 });
    expect(parsePayload('kvm_mmio', 'mmio unsatisfied-read len 4 gpa 0xfe000000 val 0x0')).toMatchObject({ type: 'unsatisfied-read', len: 4, gpa: 0xfe000000n });
    expect(parsePayload('kvm_hypercall', 'nr 0xc a0 0x200000 a1 0x1 a2 0x10 a3 0x0')).toMatchObject({ nr: 12n, args: [0x200000n, 1n, 0x10n, 0n] });
    expect(parsePayload('kvm_vm_set_mem_attributes', '0000000000000000 -- 0x00000000080000 [0x8]')).toMatchObject({ start: 0n, end: 0x80000n, attributes: 8n });
    expect(parsePayload('kvm_vm_set_mem_attributes', 'gfn 0x200, cnt 0x1, attributes 0x0')).toMatchObject({ start: 0x200n, end: 0x201n, attributes: 0n });
    // %#016llx prints zero without the 0x.
    expect(formatPayload({ name: 'kvm_vm_set_mem_attributes', start: 0n, end: 0x200n, attributes: 8n }).payload).toBe('0000000000000000 -- 0x00000000000200 [0x8]');
  });

  it('SPTE events', () => {
    expect(parsePayload('kvm_tdp_mmu_spte_changed', 'as id 0 gfn 8000fe000 level 1 old_spte 8000000000000000 new_spte 8000fe000098')).toMatchObject({ gfn: 0x8000fe000n, level: 1, oldSpte: 1n << 63n, newSpte: 0x8000fe000098n });
    expect(parsePayload('kvm_mmu_set_spte', 'gfn 200 spte 86000002a7e00ff7 (rwxu) level 2 at 311e01008')).toMatchObject({ access: 'rwxu', level: 2, sptep: 0x311e01008n });
    expect(parsePayload('kvm_mmu_spte_requested', 'gfn 201 pfn 2a7e11 level 1')).toMatchObject({ gfn: 0x201n, pfn: 0x2a7e11n, level: 1 });
    expect(parsePayload('mark_mmio_spte', 'sptep:00000000b3d21f7e gfn 8000fe000 access 0 gen 13')).toMatchObject({ gfn: 0x8000fe000n, gen: 0x13 });
    expect(parsePayload('handle_mmio_page_fault', 'addr:fe000004 gfn fe000 access 6')).toMatchObject({ addr: 0xfe000004n, access: 6 });
    expect(parsePayload('fast_page_fault', 'vcpu 0 gva 7f00 error_code  sptep ffff8881 old 0 new 8600 spurious 0 fixed 1')).toMatchObject({ errorCode: '', oldSpte: 0n, fixed: true });
    expect(parsePayload('kvm_mmu_split_huge_page', 'gfn 200 spte 8600000200200bb7 level 2 errno 0')).toMatchObject({ level: 2, errno: 0 });
  });

  it('every event prints in the layout it reads', () => {
    const lines: [string, string][] = [
      ['kvm_entry', 'vcpu 0, rip 0x0'],
      ['kvm_page_fault', 'vcpu 1 rip 0x0 address 0x0000000000201000 error_code 0x2'],
      ['kvm_mmio', 'mmio write len 4 gpa 0xfe000004 val 0x1'],
      ['kvm_pio', 'pio_write at 0x604 size 2 count 1 val 0x2000 '],
      ['kvm_tdp_mmu_spte_changed', 'as id 0 gfn 200 level 1 old_spte 8000000000000000 new_spte 86000002a7e10f77'],
      ['kvm_mmu_set_spte', 'gfn 200 spte 86000002a7e10f77 (rwxu) level 1 at 301c02000'],
    ];
    for (const [event, payload] of lines) expect(formatPayload(parsePayload(event, payload)!)).toEqual({ event, payload });
  });

  it('an event nobody parses is kept as unknown', () => {
    expect(parsePayload('sched_switch', 'prev_comm=x ==> next_comm=y')).toEqual({ name: 'unknown', event: 'sched_switch', payload: 'prev_comm=x ==> next_comm=y' });
  });
});

describe('TDX messages in dmesg and printk:console', () => {
  const demote = seamcallLeaf('TDH.MEM.PAGE.DEMOTE');

  it("KVM's SEAMCALL error: leaf by name, status decoded, operands named as printed (v6.16 rcx/rdx)", () => {
    expect(parsePayload('dmesg', 'kvm_intel: SEAMCALL TDH_MEM_PAGE_DEMOTE failed: 0xc0000b0800000000, rcx 0x80000002a7e000f0, rdx 0x101')).toEqual({
      name: 'tdx_seamcall_error',
      leafName: 'TDH.MEM.PAGE.DEMOTE',
      leaf: demote,
      printed: 'TDH_MEM_PAGE_DEMOTE',
      status: TDX_TLB_TRACKING_NOT_DONE,
      statusName: 'TDX_TLB_TRACKING_NOT_DONE',
      operands: { rcx: 0x80000002a7e000f0n, rdx: 0x101n },
      origin: 'kvm',
    });
  });

  it('the later TDX_BUG_ON wording, its three-operand form, the operand id in the status, and no operands at all', () => {
    expect(parsePayload('console', 'kvm_intel: SEAMCALL TDH_MEM_PAGE_AUG failed: 0x8000020000000092, entry 0x8000000000000000, level_state 0x0')).toMatchObject({
      leafName: 'TDH.MEM.PAGE.AUG',
      statusName: 'TDX_OPERAND_BUSY|SEPT_TREE',
      operands: { entry: 1n << 63n, level_state: 0n },
    });
    expect(parsePayload('dmesg', 'kvm_intel: SEAMCALL TDH_PHYMEM_PAGE_RECLAIM failed: 0xc000060700000000, rcx 0x1, rdx, 0x2, r8 0x3')).toMatchObject({ operands: { rcx: 1n, rdx: 2n, r8: 3n }, statusName: 'TDX_LIFECYCLE_STATE_INCORRECT' });
    expect(parsePayload('dmesg', 'kvm_intel: SEAMCALL TDH_MEM_TRACK failed: 0x80000200000000a9')).toMatchObject({ leafName: 'TDH.MEM.TRACK', statusName: 'TDX_OPERAND_BUSY|TD_EPOCH', operands: {} });
  });

  it("the core kernel's seamcall_err: the function number in hex or decimal, with its register dump folded in", () => {
    const text = ['[ 7.000001] virt/tdx: SEAMCALL (0x0000000000000021) failed: 0xc000010000000000', '[ 7.000002] virt/tdx: RCX 0x0000000000000001 RDX 0x0000000000000002 R08 0x0000000000000003', '[ 7.000003] virt/tdx: R09 0x0000000000000004 R10 0x0000000000000005 R11 0x0000000000000006'].join('\n');
    const r = parseTraceText({ file: 'boot.dmesg', text });
    expect(r.events).toHaveLength(1);
    expect(r.events[0]!.data).toMatchObject({ leafName: 'TDH.SYS.INIT', statusName: 'TDX_OPERAND_INVALID', origin: 'virt/tdx', operands: { rcx: 1n, rdx: 2n, r08: 3n, r09: 4n, r10: 5n, r11: 6n } });
    expect(r.events[0]!.src).toEqual({ file: 'boot.dmesg', line: 1, endLine: 3 });
    expect(parsePayload('dmesg', 'virt/tdx: SEAMCALL (15) failed: 0xc0000b0800000000')).toMatchObject({ leafName: 'TDH.MEM.PAGE.DEMOTE' });
    expect(parseRegisterDump('RCX 0x1 RDX 0x2 R08 0x3')).toEqual({ rcx: 1n, rdx: 2n, r08: 3n });
  });

  it("TDH_VP_RD failures and the PENDING access that kills the VM; anything else stays a printk", () => {
    expect(parsePayload('dmesg', 'kvm_intel: TDH_VP_RD[VMCS.0x4402] failed 0xc0000c0200000000')).toMatchObject({ leafName: 'TDH.VP.RD', statusName: 'TDX_METADATA_FIELD_NOT_READABLE', operands: { field: 0x4402n } });
    expect(parsePayload('dmesg', 'kvm_intel: Guest access before accepting 0x300000 on vCPU 0')).toEqual({ name: 'tdx_pending_access', gpa: 0x300000n, vcpu: 0 });
    expect(parsePayload('dmesg', 'WARNING: CPU: 5 PID: 8812 at arch/x86/kvm/vmx/tdx.c:1951')).toMatchObject({ name: 'printk' });
  });
});
