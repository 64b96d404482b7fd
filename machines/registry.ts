/**
 * Scenario → actors. Actor ids are stable scenario names (`guest.vcpu0`, `hw.cpu0`, `tdx`, `kvm.vcpu0`,
 * `kvm.mmu`, `vmm`), listed top-down as the layers sit: guest, CPU, TDX module, KVM, userspace. That order
 * is also the order of `enabledChoices`, so it is part of the log format.
 */
import type { ActorSpec } from '../src/runtime/world.ts';
import type { Scenario } from '../src/scenario/schema.ts';
import { sharedBit, eptLevels, gpaToGfn, PAGE_SIZE } from '../src/arch/gpa.ts';
import { TD_ATTR_SEPT_VE_DISABLE } from '../src/arch/tdxStatus.ts';
import { guestVcpuMachine } from './guest/guestVcpu.ts';
import { placeProgram, type GuestOp } from './guest/program.ts';
import { cpuMachine } from './hw/cpu.ts';
import { tdxModuleMachine } from './tdxModule/tdxModule.ts';
import { kvmVcpuMachine } from './kvm/kvmVcpu.ts';
import { tdpMmuMachine } from './kvm/tdpMmu.ts';
import { vmmMachine } from './vmm/vmm.ts';

/**
 * Host physical pages the model hands out. The values are arbitrary but fixed, so logs are comparable:
 * the TD's TDR and TDVPR pages, the two TDP MMU roots and each vCPU's page-table page cache.
 */
export const HOST_LAYOUT = {
  tdrPa: 0x100000000n,
  tdvprPa: (vcpu: number) => 0x100000000n + BigInt((vcpu + 1) * 0x1000),
  mirrorRootPfn: 0x180000,
  directRootPfn: 0x180001,
  cachePfnBase: (vcpu: number) => 0x181000 + vcpu * 0x100,
} as const;

/** ioremap() hands out vmalloc addresses; VMALLOC_START with 4-level paging. */
const VMALLOC_START = 0xffffc90000000000n;

const ATTRIBUTE_BITS: Record<string, bigint> = { SEPT_VE_DISABLE: TD_ATTR_SEPT_VE_DISABLE };

export function actorsFor(s: Scenario): ActorSpec[] {
  const td = s.vm.type === 'tdx';
  const gpaw = s.vm.gpaw as 48 | 52;
  const shared = td ? sharedBit(gpaw) : 0n;
  const nv = s.vcpus.length;
  const vcpus = [...Array(nv).keys()];
  const memslots = s.memslots.map((m) => ({ baseGfn: gpaToGfn(m.gpa), npages: m.size / PAGE_SIZE, guestMemfd: m.guestMemfd }));
  // Each memslot update advances the generation by the number of memslot address spaces: 2 (normal and
  // SMM) for a VMX guest, 1 for a VM with private memory, which cannot use SMM.
  const memslotsGeneration = memslots.length * (td ? 1 : 2);

  const actors: ActorSpec[] = [];
  for (const v of vcpus) {
    const ops: GuestOp[] = s.vcpus[v]!.program.map((op) =>
      op.op === 'hlt' ? op : { ...op, gla: op.gla ?? VMALLOC_START + ((op.gpa & ~shared) & 0xfffffffn) } as GuestOp,
    );
    actors.push({ id: `guest.vcpu${v}`, machine: guestVcpuMachine, input: { vcpu: v, vmType: s.vm.type, gpaw, program: placeProgram(ops) } });
  }
  for (const v of vcpus) actors.push({ id: `hw.cpu${v}`, machine: cpuMachine, input: { vcpu: v, vmType: s.vm.type, gpaw } });
  if (td) {
    const attributes = s.vm.attributes.reduce((a, n) => a | ATTRIBUTE_BITS[n]!, 0n);
    actors.push({ id: 'tdx', machine: tdxModuleMachine, input: { gpaw, attributes, tdrPa: HOST_LAYOUT.tdrPa, tdvpr: vcpus.map(HOST_LAYOUT.tdvprPa) } });
  }
  for (const v of vcpus) {
    actors.push({
      id: `kvm.vcpu${v}`,
      machine: kvmVcpuMachine,
      input: {
        vcpu: v,
        vmType: s.vm.type,
        gpaw,
        tdvpr: td ? HOST_LAYOUT.tdvprPa(v) : 0n,
        memslots,
        memslotsGeneration,
        cachePfnBase: HOST_LAYOUT.cachePfnBase(v),
        topLevel: eptLevels(gpaw),
      },
    });
  }
  actors.push({
    id: 'kvm.mmu',
    machine: tdpMmuMachine,
    input: { vmType: s.vm.type, gpaw, directRootPfn: HOST_LAYOUT.directRootPfn, mirrorRootPfn: td ? HOST_LAYOUT.mirrorRootPfn : null },
  });
  actors.push({
    id: 'vmm',
    machine: vmmMachine,
    input: {
      vcpus: nv,
      devices: s.devices.map((d) => ({ name: d.name, base: d.gpa, size: d.size, regs: Object.fromEntries(Object.entries(d.registers).map(([k, v]) => ['0x' + BigInt(k).toString(16), v])) })),
    },
  });
  return actors;
}
