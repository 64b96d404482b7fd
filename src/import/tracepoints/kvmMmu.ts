/**
 * The kvmmmu tracepoints (arch/x86/kvm/mmu/mmutrace.h) that show what the TDP MMU did to its SPTEs:
 *
 *   kvm_tdp_mmu_spte_changed  `as id %d gfn %llx level %d old_spte %llx new_spte %llx` — every SPTE change
 *                             handle_changed_spte sees, once per logical change (a mirror SPTE's freeze
 *                             around TDH.MEM.SEPT.ADD/AUG is not traced; its old → final value is). GFNs of
 *                             the direct root of a TD carry the shared bit; each is rounded to its level.
 *   kvm_mmu_set_spte          `gfn %llx spte %llx (%s%s%s%s) level %d at %llx` — a leaf the fault installed
 *                             (r, w, x, and u for shadow_user_mask = R with EPT)
 *   mark_mmio_spte            `sptep:%p gfn %llx access %x gen %x` — an MMIO leaf instead
 *   kvm_mmu_spte_requested    `gfn %llx pfn %llx level %d` — kvm_tdp_mmu_map's goal, after the huge-page
 *                             adjustment (the GFN without the shared bit)
 *   handle_mmio_page_fault    `addr:%llx gfn %llx access %x` — an access that met a valid MMIO SPTE
 *   fast_page_fault           `vcpu %d gva %llx error_code %s sptep %p old %#llx new %llx spurious %d fixed %d`
 *   check_mmio_spte           `spte %llx kvm_gen %x spte-gen %x valid %d`
 *   kvm_mmu_split_huge_page   `gfn %llx spte %llx level %d errno %d`
 */
import type { Tracepoint } from './tracepoint.ts';
import { altHex, x, readHex } from './printf.ts';

const H = '([0-9a-fA-F]+)';

function rx(src: string): RegExp {
  return new RegExp(`^${src}$`);
}

const SPTE_CHANGED = rx(`as id (\\d+) gfn ${H} level (\\d+) old_spte ${H} new_spte ${H}`);
export const kvmTdpMmuSpteChanged: Tracepoint<'kvm_tdp_mmu_spte_changed'> = {
  event: 'kvm_tdp_mmu_spte_changed',
  parse(payload) {
    const m = SPTE_CHANGED.exec(payload.trim());
    if (!m) return null;
    return { name: 'kvm_tdp_mmu_spte_changed', asId: Number(m[1]), gfn: readHex(m[2]!), level: Number(m[3]), oldSpte: readHex(m[4]!), newSpte: readHex(m[5]!) };
  },
  format(d) {
    return `as id ${d.asId} gfn ${x(d.gfn)} level ${d.level} old_spte ${x(d.oldSpte)} new_spte ${x(d.newSpte)}`;
  },
};

const SET_SPTE = rx(`gfn ${H} spte ${H} \\(([-rwxu]{3,4})\\) level (\\d+) at ${H}`);
export const kvmMmuSetSpte: Tracepoint<'kvm_mmu_set_spte'> = {
  event: 'kvm_mmu_set_spte',
  parse(payload) {
    const m = SET_SPTE.exec(payload.trim());
    if (!m) return null;
    return { name: 'kvm_mmu_set_spte', gfn: readHex(m[1]!), spte: readHex(m[2]!), access: m[3]!, level: Number(m[4]), sptep: readHex(m[5]!) };
  },
  format(d) {
    return `gfn ${x(d.gfn)} spte ${x(d.spte)} (${d.access}) level ${d.level} at ${x(d.sptep)}`;
  },
};

const REQUESTED = rx(`gfn ${H} pfn ${H} level (\\d+)`);
export const kvmMmuSpteRequested: Tracepoint<'kvm_mmu_spte_requested'> = {
  event: 'kvm_mmu_spte_requested',
  parse(payload) {
    const m = REQUESTED.exec(payload.trim());
    return m ? { name: 'kvm_mmu_spte_requested', gfn: readHex(m[1]!), pfn: readHex(m[2]!), level: Number(m[3]) } : null;
  },
  format(d) {
    return `gfn ${x(d.gfn)} pfn ${x(d.pfn)} level ${d.level}`;
  },
};

const MARK_MMIO = rx(`sptep:(\\S+) gfn ${H} access ${H} gen ${H}`);
export const markMmioSpte: Tracepoint<'mark_mmio_spte'> = {
  event: 'mark_mmio_spte',
  parse(payload) {
    const m = MARK_MMIO.exec(payload.trim());
    return m ? { name: 'mark_mmio_spte', sptep: m[1]!, gfn: readHex(m[2]!), access: Number(readHex(m[3]!)), gen: Number(readHex(m[4]!)) } : null;
  },
  format(d) {
    return `sptep:${d.sptep} gfn ${x(d.gfn)} access ${x(d.access)} gen ${x(d.gen)}`;
  },
};

const MMIO_PF = rx(`addr:${H} gfn ${H} access ${H}`);
export const handleMmioPageFault: Tracepoint<'handle_mmio_page_fault'> = {
  event: 'handle_mmio_page_fault',
  parse(payload) {
    const m = MMIO_PF.exec(payload.trim());
    return m ? { name: 'handle_mmio_page_fault', addr: readHex(m[1]!), gfn: readHex(m[2]!), access: Number(readHex(m[3]!)) } : null;
  },
  format(d) {
    return `addr:${x(d.addr)} gfn ${x(d.gfn)} access ${x(d.access)}`;
  },
};

// The error-code flags may be empty, which leaves two spaces.
const FAST_PF = rx(`vcpu (\\d+) gva ${H} error_code ?(\\S*) sptep (\\S+) old ((?:0x)?[0-9a-fA-F]+) new ${H} spurious (\\d) fixed (\\d)`);
export const fastPageFault: Tracepoint<'fast_page_fault'> = {
  event: 'fast_page_fault',
  parse(payload) {
    const m = FAST_PF.exec(payload.trim());
    if (!m) return null;
    return {
      name: 'fast_page_fault',
      vcpu: Number(m[1]),
      gva: readHex(m[2]!),
      errorCode: m[3]!,
      sptep: m[4]!,
      oldSpte: readHex(m[5]!),
      newSpte: readHex(m[6]!),
      spurious: m[7] === '1',
      fixed: m[8] === '1',
    };
  },
  format(d) {
    return `vcpu ${d.vcpu} gva ${x(d.gva)} error_code ${d.errorCode} sptep ${d.sptep} old ${altHex(d.oldSpte)} new ${x(d.newSpte)} spurious ${d.spurious ? 1 : 0} fixed ${d.fixed ? 1 : 0}`;
  },
};

const CHECK_MMIO = rx(`spte ${H} kvm_gen ${H} spte-gen ${H} valid (\\d)`);
export const checkMmioSpte: Tracepoint<'check_mmio_spte'> = {
  event: 'check_mmio_spte',
  parse(payload) {
    const m = CHECK_MMIO.exec(payload.trim());
    return m ? { name: 'check_mmio_spte', spte: readHex(m[1]!), kvmGen: Number(readHex(m[2]!)), spteGen: Number(readHex(m[3]!)), valid: m[4] === '1' } : null;
  },
  format(d) {
    return `spte ${x(d.spte)} kvm_gen ${x(d.kvmGen)} spte-gen ${x(d.spteGen)} valid ${d.valid ? 1 : 0}`;
  },
};

const SPLIT = rx(`gfn ${H} spte ${H} level (\\d+) errno (-?\\d+)`);
export const kvmMmuSplitHugePage: Tracepoint<'kvm_mmu_split_huge_page'> = {
  event: 'kvm_mmu_split_huge_page',
  parse(payload) {
    const m = SPLIT.exec(payload.trim());
    return m ? { name: 'kvm_mmu_split_huge_page', gfn: readHex(m[1]!), spte: readHex(m[2]!), level: Number(m[3]), errno: Number(m[4]) } : null;
  },
  format(d) {
    return `gfn ${x(d.gfn)} spte ${x(d.spte)} level ${d.level} errno ${d.errno}`;
  },
};
