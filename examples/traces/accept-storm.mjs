#!/usr/bin/env node
/**
 * Writes the `trace-cmd report` of a TD's boot-time acceptance of one 2 MiB range when KVM maps private
 * memory at 4K only (upstream): Linux's tdx_accept_memory asks for 2M first, the module exits with EEQ type
 * ACCEPT at level 2M, KVM adds the missing S-EPT level and AUGs the 4K page at the GPA; the re-executed 2M
 * ACCEPT now finds a page table and gets TDX_PAGE_SIZE_MISMATCH (no exit), so the guest accepts 4K at a
 * time — the first page is PENDING already, each of the 511 others exits once more (EEQ ACCEPT at 4K) and
 * is AUGed: 512 TD exits and 512 AUGs for one 2M accept (tdx-semantics.md §6.ii A, §6.iii).
 *
 * The build added one measured image page (0x100000), so the S-EPT levels above the first 2M exist and the
 * 2M accept's walk stops at the 2M entry (EEQ info: requested level 1, error level 1, FREE).
 *
 * Usage: node examples/traces/accept-storm.mjs > accept-storm.trace-cmd.txt
 * The importer tests generate it the same way (it is too long to keep in the repository).
 */

const VMM = ['qemu-system-x86', 10511];
const VCPU0 = ['CPU 0/KVM', 10537];
const BASE = 0x200000;
const PAGES = 512;

const hex = (v) => BigInt(v).toString(16);
const pad = (v, n) => hex(v).padStart(n, '0');

function line([comm, pid], cpu, ts, event, payload) {
  const task = `${comm}-${pid}`.padStart(16);
  return `${task} [${String(cpu).padStart(3, '0')}] ${ts.toFixed(6).padStart(12)}: ${`${event}:`.padEnd(20)} ${payload}`;
}

function exit(reason, info1, info2) {
  return `vcpu 0 reason ${reason} rip 0x0 info1 0x${pad(info1, 16)} info2 0x${pad(info2, 16)} intr_info 0x00000000 error_code 0x00000000`;
}

function changed(gfn, level, oldSpte, newSpte) {
  return `as id 0 gfn ${hex(gfn)} level ${level} old_spte ${hex(oldSpte)} new_spte ${hex(newSpte)}`;
}

const NONPRESENT = 0x8000000000000000n;
/** A mirror 4K leaf as KVM builds it: SVE, host/MMU-writable, WB, A/D, MMU-present, RWX; the PFN is the host's. */
const leaf = (pfn) => 0x8600000000000f77n | (BigInt(pfn) << 12n);
const table = (pfn) => 0x8000000000000907n | (BigInt(pfn) << 12n);
const ACCEPT_2M_EEQ = 0x0000000900000001n; // type ACCEPT, info: requested level 1, error level 1, FREE
const ACCEPT_4K_EEQ = 0x0000000000000001n; // type ACCEPT, info: requested level 0, error level 0, FREE
const ACCEPT_QUAL = 0x2n; // the module synthesises a write with the entry's R/W/X (000)

export function acceptStormTrace() {
  const out = ['cpus=16'];
  let ts = 1800.004117;
  const at = (who, cpu, event, payload, dt = 0.000002) => {
    out.push(line(who, cpu, ts, event, payload));
    ts += dt;
  };
  at(VMM, 3, 'kvm_vm_set_mem_attributes', '0000000000000000 -- 0x00000000080000 [0x8]', 0.051);
  // KVM_TDX_INIT_MEM_REGION of the image page, on QEMU's main thread.
  at(VMM, 3, 'kvm_mmu_spte_requested', 'gfn 100 pfn 4b2d00 level 1');
  at(VMM, 3, 'kvm_tdp_mmu_spte_changed', changed(0x0, 4, NONPRESENT, table(0x3c1a00)));
  at(VMM, 3, 'kvm_tdp_mmu_spte_changed', changed(0x0, 3, NONPRESENT, table(0x3c1a01)));
  at(VMM, 3, 'kvm_tdp_mmu_spte_changed', changed(0x0, 2, NONPRESENT, table(0x3c1a02)));
  at(VMM, 3, 'kvm_tdp_mmu_spte_changed', changed(0x100, 1, NONPRESENT, leaf(0x4b2d00)), 0);
  at(VMM, 3, 'kvm_mmu_set_spte', `gfn 100 spte ${hex(leaf(0x4b2d00))} (rwxu) level 1 at 3c1a02800`, 0.2);
  for (let i = 0; i < PAGES; i++) {
    const gfn = BASE / 0x1000 + i;
    const pfn = 0x4b2e00 + i;
    at(VCPU0, 7, 'kvm_entry', 'vcpu 0, rip 0x0', i === 0 ? 0.000031 : 0.000024);
    at(VCPU0, 7, 'kvm_exit', exit('EPT_VIOLATION', ACCEPT_QUAL, i === 0 ? ACCEPT_2M_EEQ : ACCEPT_4K_EEQ), 0.000001);
    at(VCPU0, 7, 'kvm_page_fault', `vcpu 0 rip 0x0 address 0x${pad(gfn * 0x1000, 16)} error_code 0x2`, 0.000004);
    at(VCPU0, 7, 'kvm_mmu_spte_requested', `gfn ${hex(gfn)} pfn ${hex(pfn)} level 1`, 0.000005);
    if (i === 0) at(VCPU0, 7, 'kvm_tdp_mmu_spte_changed', changed(gfn, 2, NONPRESENT, table(0x3c1a03)), 0.000006);
    at(VCPU0, 7, 'kvm_tdp_mmu_spte_changed', changed(gfn, 1, NONPRESENT, leaf(pfn)), 0);
    at(VCPU0, 7, 'kvm_mmu_set_spte', `gfn ${hex(gfn)} spte ${hex(leaf(pfn))} (rwxu) level 1 at 3c1a03${pad((i % 512) * 8, 3)}`, 0.000002);
  }
  at(VCPU0, 7, 'kvm_entry', 'vcpu 0, rip 0x0', 0.000410);
  at(VCPU0, 7, 'kvm_exit', exit('HLT', 0xffccn, 0n));
  return out.join('\n') + '\n';
}

if (import.meta.url === `file://${process.argv[1]}`) process.stdout.write(acceptStormTrace());
