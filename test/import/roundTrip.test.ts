/**
 * `tdxsim export --format trace-cmd` and `tdxsim import` are inverse enough: every bundled example's log,
 * printed as a trace, builds a scenario whose run aligns with that trace event for event.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { traceCmdReport } from '../../src/export/traceCmd.ts';
import { importTraces } from '../../src/import/importTrace.ts';
import { examplesDir } from '../../src/scenario/load.ts';
import { runInMemory } from '../../src/session/open.ts';

const examples = readdirSync(examplesDir()).filter((n) => existsSync(path.join(examplesDir(), n, 'scenario.yaml'))).sort();

/**
 * Examples whose guest or host does what a trace cannot yet be turned back into: the importer rebuilds
 * neither a port read (`in`), a TDVMCALL the program issues itself (`tdvmcall`), interrupts (an MSI, the
 * LAPIC timer, a HLT that waits for one), a guest's IPI (its x2APIC ICR write), a host program's steps,
 * nor a page-crossing load's exception fixup, nor host threads, so their runs diverge there.
 */
const NOT_REBUILT: Readonly<Record<string, string>> = {
  'io-selftest': 'in and a raw TDG.VP.VMCALL<Instruction.IO>',
  'fatal-error': 'a raw TDG.VP.VMCALL<ReportFatalError>',
  'host-convert-race': "the VMM's host program (waitMemory, setAttributes)",
  'host-exit-race': "the VMM's host program (waitMemory, exit)",
  'pre-fault-memory': "the VMM's host program (KVM_PRE_FAULT_MEMORY, whose AUGs a trace shows without the ioctl)",
  'memslot-delete-during-fault': "the VMM's host program (setMemoryRegion, waitExit, exit)",
  'zeropad-into-mmio': "load_unaligned_zeropad's page-crossing MMIO half, finished by the exception fixup",
  'vcpu-create-while-running': 'host threads (hostThreads): a vCPU created by a thread, the build around them',
  'ipi-wakeup': "a guest's IPI: the x2APIC ICR write's #VE and TDG.VP.VMCALL<Instruction.WRMSR>",
  'halt-poll': "a guest's IPIs (x2APIC ICR writes) and the HLTs they end",
};

describe('export then import', () => {
  it.each(Object.entries(NOT_REBUILT))('%s: the import names where it diverges (%s)', (name) => {
    const { log, file } = runInMemory(name);
    const r = importTraces([{ file: `${name}.trace.txt`, text: traceCmdReport(log, file) }]);
    expect(r.trace.diagnostics).toEqual([]);
    expect(r.first).not.toBeNull();
  });

  it('covers every bundled example', () => {
    expect(examples.length).toBeGreaterThanOrEqual(14);
  });

  it.each(examples.filter((e) => NOT_REBUILT[e] === undefined).map((e) => [e]))('%s: the exported trace replays with no divergence', (name) => {
    const { log, file } = runInMemory(name);
    const text = traceCmdReport(log, file);
    expect(traceCmdReport(log, file)).toBe(text);
    const r = importTraces([{ file: `${name}.trace.txt`, text }]);
    expect(r.trace.diagnostics).toEqual([]);
    expect(r.first).toBeNull();
    const compared = [...r.alignment.streams.real.values()].reduce((n, s) => n + s.length, 0);
    expect(r.alignment.pairs).toHaveLength(compared);
    // Everything the export printed was compared, save the host's own exits, the HLTs an interrupt woke
    // (hlt-wakeup, timer-wakeup) and their re-entries.
    const aside = [...r.alignment.aside.entries()].filter(([e]) => e.src !== null);
    expect(aside.every(([e, why]) => (why === 'host exit' || why === 'woken HLT') && (e.data.name === 'kvm_exit' || e.data.name === 'kvm_entry'))).toBe(true);
    expect(compared + aside.length).toBe(r.trace.events.length);
  });
});
