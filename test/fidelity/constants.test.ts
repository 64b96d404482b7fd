// Our architectural constants against the numbers printed in docs/tdx-semantics.md. Every assertion
// compares an exported value with a number parsed out of the document, so an edit on either side that
// breaks agreement fails here. A table or list the parser no longer recognises fails too.
import { describe, it, expect } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as seamcall from '../../src/arch/seamcall.ts';
import * as tdcall from '../../src/arch/tdcall.ts';
import * as vmx from '../../src/arch/vmx.ts';
import * as tdxStatus from '../../src/arch/tdxStatus.ts';
import * as kvmApi from '../../src/arch/kvmApi.ts';
import * as gpa from '../../src/arch/gpa.ts';
import * as spte from '../../src/arch/spte.ts';
import { SEPT_STATE_ENCODING, SEPT_STATE_PUBLIC, SEPT_STATES, type SeptState, septIsLeaf } from '../../src/arch/sept.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const docPath = path.join(repoRoot, 'docs', 'tdx-semantics.md');
if (!existsSync(docPath)) throw new Error(`the domain reference is missing: ${docPath}`);
const doc = readFileSync(docPath, 'utf8');
const docLines = doc.split('\n');

// ---------------------------------------------------------------------------------------------------
// Document parsing

/** Body of the section whose heading starts with `id` ('4.1', '5a.1', '2.'), up to the next heading. */
function section(id: string): string {
  const isHeading = (l: string): boolean => /^#{2,4} /.test(l);
  const start = docLines.findIndex((l) => isHeading(l) && l.replace(/^#+ /, '').startsWith(`${id} `));
  if (start < 0) throw new Error(`docs/tdx-semantics.md has no section ${id}`);
  const rest = docLines.slice(start + 1);
  const end = rest.findIndex(isHeading);
  return (end < 0 ? rest : rest.slice(0, end)).join('\n');
}

/** The line of `text` that starts with `prefix` (a bullet is matched with its '* '). */
function lineOf(text: string, prefix: string): string {
  const found = text.split('\n').find((l) => l.startsWith(prefix));
  if (found === undefined) throw new Error(`no line starting with ${JSON.stringify(prefix)}`);
  return found;
}

/** Table cells; '|' inside backticks or escaped as '\|' does not split. */
function cells(row: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inCode = false;
  for (let i = 1; i < row.length; i++) {
    const c = row[i];
    if (c === '\\' && row[i + 1] === '|') {
      cur += '|';
      i++;
    } else if (c === '`') {
      inCode = !inCode;
      cur += c;
    } else if (c === '|' && !inCode) {
      out.push(cur.trim());
      cur = '';
    } else {
      cur += c;
    }
  }
  return out;
}

/** Body rows of the (first) table in `text`, without header and separator. */
function tableRows(text: string): string[][] {
  const rows = text.split('\n').filter((l) => l.startsWith('|'));
  if (rows.length < 3) throw new Error(`no table in:\n${text.slice(0, 200)}`);
  return rows.slice(2).map(cells);
}

function all(text: string, re: RegExp): RegExpMatchArray[] {
  return [...text.matchAll(re)];
}

const strip = (s: string): string => s.replace(/\*\*/g, '').replace(/`/g, '').trim();
const num = (s: string): bigint => BigInt(strip(s));
const genmask = (hi: bigint, lo: bigint): bigint => ((1n << (hi - lo + 1n)) - 1n) << lo;

/** Small expressions the document writes: 0x.., decimal, 1<<n, bit n, bits h:l, GENMASK(h,l), N KiB/MiB. */
function evalExpr(expr: string): bigint {
  const e = strip(expr);
  let m: RegExpMatchArray | null;
  if ((m = e.match(/^(0x[0-9a-f]+|\d+)$/i))) return BigInt(m[1] as string);
  if ((m = e.match(/^1\s*<<\s*(\d+)$/))) return 1n << BigInt(m[1] as string);
  if ((m = e.match(/^bit (\d+)$/))) return 1n << BigInt(m[1] as string);
  if ((m = e.match(/^bits (\d+):(\d+)$/))) return genmask(BigInt(m[1] as string), BigInt(m[2] as string));
  if ((m = e.match(/^GENMASK\((\d+),\s*(\d+)\)$/))) return genmask(BigInt(m[1] as string), BigInt(m[2] as string));
  if ((m = e.match(/^(\d+) KiB\b/))) return BigInt(m[1] as string) * 1024n;
  if ((m = e.match(/^(\d+) MiB\b/))) return BigInt(m[1] as string) * 1024n * 1024n;
  throw new Error(`cannot evaluate ${JSON.stringify(expr)}`);
}

function exported(mod: object, name: string): unknown {
  return (mod as Record<string, unknown>)[name];
}
function expectNumber(mod: object, name: string, value: bigint): void {
  const v = exported(mod, name);
  expect(typeof v, `${name} exported as a number`).toBe('number');
  expect(BigInt(v as number), name).toBe(value);
}
function expectBigint(mod: object, name: string, value: bigint): void {
  const v = exported(mod, name);
  expect(typeof v, `${name} exported as a bigint`).toBe('bigint');
  expect(v, name).toBe(value);
}

/** 'TDH.SYS.KEY.CONFIG, SYS.INFO' / 'TDG.SERVTD.RD / WR' → full names. */
function leafNames(cell: string, prefix: string): string[] {
  const names: string[] = [];
  for (const part of strip(cell).split(/\s*[,/]\s*/)) {
    const prev = names[names.length - 1];
    if (part.startsWith(prefix)) names.push(part);
    else if (part.includes('.')) names.push(prefix + part);
    else if (prev !== undefined) names.push(prev.replace(/[^.]+$/, part));
    else throw new Error(`cannot expand leaf name ${part}`);
  }
  return names;
}

interface LeafRow {
  leaf: number;
  name: string;
}
function leafTable(id: string, prefix: string): { rows: LeafRow[]; ranges: string[] } {
  const rows: LeafRow[] = [];
  const ranges: string[] = [];
  for (const [numbers, names] of tableRows(section(id))) {
    if (numbers === undefined || names === undefined) throw new Error(`short row in §${id}`);
    if (numbers.includes('–')) {
      ranges.push(names);
      continue;
    }
    const ns = numbers.split(/\s*[,/]\s*/).map(Number);
    const full = leafNames(names, prefix);
    if (ns.length !== full.length || ns.some(Number.isNaN)) throw new Error(`§${id}: cannot pair ${numbers} with ${names}`);
    ns.forEach((leaf, i) => rows.push({ leaf, name: full[i] as string }));
  }
  return { rows, ranges };
}

// ---------------------------------------------------------------------------------------------------

describe('§0.2 level conventions and §2 shared bit', () => {
  const s02 = section('0.2');

  it('KVM pg levels and TDX accept page sizes', () => {
    const pg = all(s02, /`(PG_LEVEL_\w+) = (\d+)`/g);
    expect(pg).toHaveLength(4);
    for (const [, name, v] of pg) expectNumber(kvmApi, name as string, num(v as string));
    const ps = all(s02, /`(TDX_PS_\w+) = (\d+)`/g);
    expect(ps).toHaveLength(3);
    for (const [, name, v] of ps) expectNumber(gpa, name as string, num(v as string));
  });

  it('TDX level = pg level − 1, checked on the sizes both conventions name', () => {
    expect(s02).toContain('`tdx_level = pg_level - 1`');
    const tdxLevels = all(s02, /`(\d) = (4K|2M|1G|PML4|PML5)/g);
    expect(tdxLevels).toHaveLength(5);
    let sized = 0;
    for (const [, tdx, size] of tdxLevels) {
      expect(gpa.tdxLevelToPgLevel(Number(tdx)) - 1, `${size}`).toBe(Number(tdx));
      const pgLevel = exported(kvmApi, `PG_LEVEL_${size}`);
      if (typeof pgLevel !== 'number') continue; // PML4/PML5 have no pg_level name in §0.2
      expect(gpa.pgLevelToTdxLevel(pgLevel), `${size}`).toBe(Number(tdx));
      sized++;
    }
    expect(sized).toBe(3);
  });

  it('page info = GPA[51:12] | level[2:0], reserved bits rejected', () => {
    const m = s02.match(/bits (\d+):(\d+) = level, bits (\d+):(\d+) reserved \(0\), bits (\d+):(\d+) = GPA/);
    expect(m).not.toBeNull();
    const [lvHi, lvLo, , resLo, gpaHi, gpaLo] = (m as RegExpMatchArray).slice(1).map(BigInt) as bigint[];
    const levelMask = genmask(lvHi as bigint, lvLo as bigint);
    const gpaMask = genmask(gpaHi as bigint, gpaLo as bigint);
    const info = gpa.makePageInfo(gpaMask, 4);
    expect(info & levelMask).toBe(4n);
    expect(info & gpaMask).toBe(gpaMask);
    expect(info & ~(levelMask | gpaMask)).toBe(0n);
    expect(() => gpa.makePageInfo(1n << (resLo as bigint), 0)).toThrow(RangeError);
    expect(() => gpa.makePageInfo(1n << ((gpaHi as bigint) + 1n), 0)).toThrow(RangeError);
  });

  it('shared bit and gfn_direct_bits per GPA width', () => {
    const s2 = section('2.');
    const shared = all(s2, /\*\*bit (\d+)\*\* (?:when the TD runs )?with GPAW = (\d+) \((\d)-level EPT\)/g);
    expect(shared).toHaveLength(2);
    for (const [, bit, gpaw, levels] of shared) {
      const w = Number(gpaw) as gpa.Gpaw;
      expect(gpa.sharedBit(w)).toBe(1n << BigInt(bit as string));
      expect(gpa.eptLevels(w)).toBe(Number(levels));
    }
    const direct = all(s2, /gpa_to_gfn\(BIT\((\d+)\)\)` \(= GFN bit (\d+)\)/g);
    expect(direct).toHaveLength(2);
    for (const [, gpaBit, gfnBit] of direct) {
      expect(gpa.gfnDirectBits((Number(gpaBit) + 1) as gpa.Gpaw)).toBe(1n << BigInt(gfnBit as string));
    }
  });
});

describe('§1 component state numbers', () => {
  it('VE_INFO valid word (§1.2)', () => {
    const m = section('1.2').match(/writes (0x[0-9A-F]+) to offset 4/);
    expect(m).not.toBeNull();
    expectNumber(tdxStatus, 'VE_INFO_VALID', num((m as RegExpMatchArray)[1] as string));
  });

  it('PAMT page types (§1.3)', () => {
    const types = all(section('1.3'), /`(PT_\w+)=(\d+)`/g);
    expect(types).toHaveLength(7);
    for (const [, name, v] of types) expectNumber(tdxStatus, name as string, num(v as string));
  });

  it('KVM TD and vCPU states (§1.4)', () => {
    const states = all(section('1.4'), /`((?:VCPU_)?TD_STATE_\w+) (\d+)`/g);
    expect(states).toHaveLength(5);
    for (const [, name, v] of states) expectNumber(kvmApi, name as string, num(v as string));
  });
});

describe('§3 SPTE layout', () => {
  it('§3.1 hardware EPT bits', () => {
    const s = section('3.1');
    const defs = all(s, /`([A-Z_0-9]+) = ([^`]+)`/g);
    expect(defs.length).toBeGreaterThanOrEqual(10);
    for (const [, name, v] of defs) expectBigint(spte, name as string, evalExpr(v as string));
    const wb = s.match(/WB = (\d+) → (0x[0-9a-f]+), UC = (\d+)/);
    expect(wb).not.toBeNull();
    const [, wbType, wbBits, ucType] = wb as RegExpMatchArray;
    expect(spte.MTRR_TYPE_WRBACK).toBe(num(wbType as string));
    expect(spte.MTRR_TYPE_WRBACK << spte.VMX_EPT_MT_EPTE_SHIFT).toBe(num(wbBits as string));
    expect(spte.MTRR_TYPE_UNCACHABLE).toBe(num(ucType as string));
    const pfnRow = tableRows(s).find((r) => r[2] === '`SPTE_BASE_ADDR_MASK`');
    expect(pfnRow?.[0]).toBeDefined();
    expect(spte.SPTE_BASE_ADDR_MASK).toBe(evalExpr(`bits ${pfnRow?.[0]}`));
  });

  it('§3.2 KVM software bits', () => {
    const rows = tableRows(section('3.2'));
    let single = 0;
    for (const [bits, meaning] of rows) {
      const name = meaning?.match(/^`(\w+)`/)?.[1];
      if (bits !== undefined && /^\d+$/.test(bits) && name !== undefined) {
        expectBigint(spte, name, 1n << BigInt(bits));
        single++;
      }
    }
    expect(single).toBe(3);
    const ad = rows.find((r) => r[1]?.includes('SPTE_TDP_AD_'));
    const [hi, lo] = (ad?.[0] ?? '').split(':').map(BigInt);
    expect(spte.SPTE_TDP_AD_MASK).toBe(genmask(hi as bigint, lo as bigint));
    expect(spte.SPTE_TDP_AD_SHIFT).toBe(lo);
    const types = ad?.[1]?.match(/(\d) enabled, (\d) disabled, (\d) write-protect-only/);
    expect(types).toBeDefined();
    const [, en, dis, wp] = types as RegExpMatchArray;
    expect(spte.SPTE_TDP_AD_ENABLED).toBe(num(en as string) << (lo as bigint));
    expect(spte.SPTE_TDP_AD_DISABLED).toBe(num(dis as string) << (lo as bigint));
    expect(spte.SPTE_TDP_AD_WRPROT_ONLY).toBe(num(wp as string) << (lo as bigint));
    const saved = rows.find((r) => r[1]?.includes('SHADOW_ACC_TRACK_SAVED_BITS_MASK'));
    const bitsSaved = (saved?.[0] ?? '').split(',').map((b) => 1n << BigInt(b.trim()));
    expect(spte.SHADOW_ACC_TRACK_SAVED_MASK).toBe(bitsSaved.reduce((a, b) => a | b, 0n));
    const shift = saved?.[1]?.match(/shifted by (\d+)/)?.[1];
    expect(spte.SHADOW_ACC_TRACK_SAVED_BITS_SHIFT).toBe(BigInt(shift ?? -1));
  });

  it('§3.3 EPT MMIO mask and values', () => {
    const s = section('3.3');
    const mask = s.match(/mask = `RWX \| SUPPRESS_VE` \(= (0x[0-9A-F]+)\)/);
    expect(mask).not.toBeNull();
    expect(spte.SHADOW_MMIO_MASK).toBe(num((mask as RegExpMatchArray)[1] as string));
    const wx = s.match(/`VMX_EPT_MISCONFIG_WX_VALUE` = W\|X = \*\*(0x[0-9a-f]+)\*\*/);
    expect(wx).not.toBeNull();
    expect(spte.VMX_EPT_MISCONFIG_WX_VALUE).toBe(num((wx as RegExpMatchArray)[1] as string));
    const td = s.match(/a TD replaces it with \*\*(\d+)\*\*/);
    expect(td).not.toBeNull();
    expect(spte.TDX_SHADOW_MMIO_VALUE).toBe(num((td as RegExpMatchArray)[1] as string));
  });

  it('§3.4 special SPTE values', () => {
    const rows = new Map(tableRows(section('3.4')).map((r) => [r[0] ?? '', r[1] ?? '']));
    const nonpresent = rows.get('`SHADOW_NONPRESENT_VALUE`')?.match(/= (0x[0-9A-F]+)/)?.[1];
    expect(spte.SHADOW_NONPRESENT_VALUE).toBe(num(nonpresent ?? 'x'));
    const frozenCell = rows.get('`FROZEN_SPTE` (formerly `REMOVED_SPTE`)') ?? '';
    expect(spte.FROZEN_SPTE).toBe(num(frozenCell.match(/= \*\*(0x[0-9A-F]+)\*\*/)?.[1] ?? 'x'));
    const low = frozenCell.match(/`SHADOW_NONPRESENT_VALUE \| (0x[0-9a-f]+)`/)?.[1];
    expect(spte.FROZEN_SPTE).toBe(spte.SHADOW_NONPRESENT_VALUE | num(low ?? 'x'));
    expect(spte.VMX_EPT_MISCONFIG_WX_VALUE).toBe(num(rows.get('MMIO SPTE (VMX)')?.match(/^`(0x[0-9a-f]+) \|/)?.[1] ?? 'x'));
    expect(spte.TDX_SHADOW_MMIO_VALUE).toBe(num(rows.get('MMIO SPTE (TDX)')?.match(/^`(0x[0-9a-f]+) \|/)?.[1] ?? 'x'));
  });

  it('§3.5 MMIO generation layout', () => {
    const s = lineOf(section('3.5'), '* 19-bit');
    const split = all(s, /generation bits (\d+)–(\d+) → SPTE bits \*\*(\d+)–(\d+)\*\*/g);
    expect(split).toHaveLength(2);
    const [[, , lowGenHi, lowStart, lowEnd], [, highGenLo, highGenHi, highStart, highEnd]] = split as [
      RegExpMatchArray,
      RegExpMatchArray,
    ];
    expect(spte.MMIO_SPTE_GEN_LOW_START).toBe(num(lowStart as string));
    expect(spte.MMIO_SPTE_GEN_LOW_END).toBe(num(lowEnd as string));
    expect(spte.MMIO_SPTE_GEN_HIGH_START).toBe(num(highStart as string));
    expect(spte.MMIO_SPTE_GEN_HIGH_END).toBe(num(highEnd as string));
    expect(spte.MMIO_SPTE_GEN_LOW_BITS).toBe(num(lowGenHi as string) + 1n);
    expect(spte.MMIO_SPTE_GEN_HIGH_BITS).toBe(num(highGenHi as string) - num(highGenLo as string) + 1n);
    // Generation bit 8 lands on SPTE bit 52, bit 0 on bit 3.
    expect(spte.generationMmioSpteMask(1 << Number(highGenLo))).toBe(1n << num(highStart as string));
    expect(spte.generationMmioSpteMask(1)).toBe(1n << num(lowStart as string));
    const width = s.match(/^\* (\d+)-bit MMIO generation/)?.[1];
    expect(spte.MMIO_SPTE_GEN_MASK).toBe((1n << num(width ?? 'x')) - 1n);
    const allowed = s.match(/`SPTE_MMIO_ALLOWED_MASK = ([^`]+)`/)?.[1] ?? 'x';
    expect(spte.SPTE_MMIO_ALLOWED_MASK).toBe(allowed.split(' | ').map(evalExpr).reduce((a, b) => a | b, 0n));
  });
});

describe('§4.1 SEAMCALL leaves', () => {
  const { rows, ranges } = leafTable('4.1', 'TDH.');

  it('parses every leaf row and skips only the migration ranges', () => {
    expect(rows.length).toBeGreaterThanOrEqual(50);
    expect(ranges).toHaveLength(1);
    expect(ranges[0]).toMatch(/EXPORT.*IMPORT/);
  });

  it('each leaf number matches the constant, the name table and seamcallLeaf()', () => {
    for (const { leaf, name } of rows) {
      expectNumber(seamcall, name.replaceAll('.', '_'), BigInt(leaf));
      expect(seamcall.SEAMCALL_LEAF_NAMES[leaf], `leaf ${leaf}`).toBe(name);
      expect(seamcall.seamcallLeaf(name)).toBe(leaf);
    }
    expect(Object.keys(seamcall.SEAMCALL_LEAF_NAMES).map(Number).sort((a, b) => a - b)).toEqual(
      rows.map((r) => r.leaf).sort((a, b) => a - b),
    );
    expect(() => seamcall.seamcallLeaf('TDH.NO.SUCH')).toThrow(RangeError);
  });
});

describe('§4.2 TDCALL leaves', () => {
  const { rows, ranges } = leafTable('4.2', 'TDG.');

  it('each leaf number matches the constant and the name table', () => {
    expect(rows).toHaveLength(21);
    expect(ranges).toHaveLength(0);
    for (const { leaf, name } of rows) {
      expectNumber(tdcall, name.replaceAll('.', '_'), BigInt(leaf));
      expect(tdcall.TDCALL_LEAF_NAMES[leaf], `leaf ${leaf}`).toBe(name);
    }
    expect(Object.keys(tdcall.TDCALL_LEAF_NAMES)).toHaveLength(rows.length);
  });
});

describe('§4.3 TDG.VP.VMCALL', () => {
  const s = section('4.3');
  const constantOf: Record<string, string> = {
    GetTdVmCallInfo: 'TDVMCALL_GET_TD_VM_CALL_INFO',
    MapGPA: 'TDVMCALL_MAP_GPA',
    GetQuote: 'TDVMCALL_GET_QUOTE',
    ReportFatalError: 'TDVMCALL_REPORT_FATAL_ERROR',
    SetupEventNotifyInterrupt: 'TDVMCALL_SETUP_EVENT_NOTIFY_INTERRUPT',
    'Instruction.CPUID': 'TDVMCALL_INSTRUCTION_CPUID',
    'Instruction.HLT': 'TDVMCALL_INSTRUCTION_HLT',
    'Instruction.IO': 'TDVMCALL_INSTRUCTION_IO',
    'Instruction.RDMSR': 'TDVMCALL_INSTRUCTION_RDMSR',
    'Instruction.WRMSR': 'TDVMCALL_INSTRUCTION_WRMSR',
    '#VE.RequestMMIO': 'TDVMCALL_VE_REQUEST_MMIO',
  };

  it('sub-function numbers, display names and message names', () => {
    const rows = tableRows(s).filter((r) => r[1] !== '');
    expect(rows).toHaveLength(Object.keys(constantOf).length);
    for (const [name, value] of rows) {
      const n = num((value ?? '').replace(/\(.*\)/, ''));
      expectNumber(tdcall, constantOf[name ?? ''] ?? `no constant for ${name}`, n);
      expect(tdcall.TDVMCALL_SUBFUNCTION_NAMES[Number(n)]).toBe(name);
      expect(tdcall.tdvmcallMessageName(Number(n))).toBe(`TDG.VP.VMCALL<${name}>`);
    }
    expect(tdcall.tdvmcallMessageName(0x10005)).toBe('TDG.VP.VMCALL<0x10005>');
    expect(Object.keys(tdcall.TDVMCALL_SUBFUNCTION_NAMES)).toHaveLength(rows.length);
  });

  it('instruction sub-functions equal the VMX exit reasons they stand for', () => {
    expect(s).toContain('The "Instruction.*" sub-function numbers are the VMX exit reasons on purpose');
    expect(tdcall.TDVMCALL_INSTRUCTION_CPUID).toBe(vmx.EXIT_REASON_CPUID);
    expect(tdcall.TDVMCALL_INSTRUCTION_HLT).toBe(vmx.EXIT_REASON_HLT);
    expect(tdcall.TDVMCALL_INSTRUCTION_IO).toBe(vmx.EXIT_REASON_IO_INSTRUCTION);
    expect(tdcall.TDVMCALL_INSTRUCTION_RDMSR).toBe(vmx.EXIT_REASON_MSR_READ);
    expect(tdcall.TDVMCALL_INSTRUCTION_WRMSR).toBe(vmx.EXIT_REASON_MSR_WRITE);
    expect(tdcall.TDVMCALL_VE_REQUEST_MMIO).toBe(vmx.EXIT_REASON_EPT_VIOLATION);
  });

  it('the Linux exposed-register bitmap, built from §4.3’s register list and §4.8’s GPR numbers', () => {
    const abi = lineOf(s, '* Guest RCX = bitmap');
    const list = abi.match(/Linux exposes ([^.]+)\./)?.[1] ?? '';
    const regs = list.split(/,\s*/).flatMap((r) => {
      const range = r.match(/^R(\d+)–R(\d+)$/);
      if (!range) return [r];
      const out: string[] = [];
      for (let i = Number(range[1]); i <= Number(range[2]); i++) out.push(`R${i}`);
      return out;
    });
    expect(regs).toHaveLength(12);
    const ids = operandIds();
    for (const r of regs) expect(ids.has(r), `§4.8 numbers ${r}`).toBe(true);
    const expected = regs.reduce((m, r) => m | (1n << BigInt(ids.get(r) ?? 0)), 0n);
    expect(tdcall.TDVMCALL_EXPOSE_REGS_MASK).toBe(expected);
    for (const [, bit] of all(abi, /bits? (\d+) (?:RAX|RCX|RSP|RBP)/g)) {
      expect(tdcall.TDVMCALL_EXPOSE_REGS_MASK & (1n << BigInt(bit as string))).toBe(0n);
    }
    expect(abi).toMatch(/R10 = 0 means "standard GHCI call"/);
    expect(tdcall.TDX_HYPERCALL_STANDARD).toBe(0n);
    expect(abi.match(/exit reason `TDCALL` \((\d+)\)/)?.[1]).toBe(String(vmx.EXIT_REASON_TDCALL));
  });

  it('§4.4 TDVMCALL status codes', () => {
    const codes = all(section('4.4'), /`([A-Z_]+) (0x[0-9A-F]+)`/g);
    expect(codes).toHaveLength(5);
    for (const [, name, v] of codes) expectBigint(tdcall, `TDVMCALL_STATUS_${name}`, num(v as string));
  });
});

describe('§4.5 exit reasons and §4.6 vectors', () => {
  it('every exit reason in the list', () => {
    const reasons = all(section('4.5'), /`([A-Z_]+) (\d+)`/g);
    expect(reasons).toHaveLength(22);
    for (const [, name, v] of reasons) {
      expectNumber(vmx, `EXIT_REASON_${name}`, num(v as string));
      expect(vmx.EXIT_REASON_NAMES[Number(v)]).toBe(name);
    }
    expect(Object.keys(vmx.EXIT_REASON_NAMES)).toHaveLength(reasons.length);
    const failed = section('4.5').match(/Bit (\d+) of the exit reason is set when VM entry failed/)?.[1];
    expect(vmx.VMX_EXIT_REASONS_FAILED_VMENTRY).toBe(2 ** Number(failed));
  });

  it('exception vectors', () => {
    const vectors = all(section('4.6'), /`#([A-Z]+) = (\d+)`/g);
    expect(vectors).toHaveLength(4);
    for (const [, name, v] of vectors) expectNumber(vmx, `${name}_VECTOR`, num(v as string));
  });
});

describe('§4.7 TDX status codes', () => {
  const s = section('4.7');

  /** '0xC0000B01… / 02… / 05…00000000' → full values: prefix of the first, suffix of the last. */
  function expandValues(cell: string): bigint[] {
    const parts = strip(cell).split(/\s*\/\s*/);
    if (!parts.some((p) => p.includes('…'))) return parts.map((p) => num(p));
    const first = parts[0] ?? '';
    const head = first.slice(0, first.indexOf('…') - 2);
    const tail = (parts[parts.length - 1] ?? '').split('…')[1] ?? '';
    return parts.map((p) => BigInt(head + p.slice(p.indexOf('…') - 2, p.indexOf('…')) + tail));
  }
  function expandNames(cell: string): string[] {
    const parts = strip(cell).split(/\s*\/\s*/);
    const first = parts[0] ?? '';
    const prefix = first.slice(0, first.lastIndexOf('_') + 1);
    return parts.map((p) => (p.startsWith('TDX_') ? p : prefix + p));
  }

  const rows = tableRows(s);
  const checks: { name: string; value: bigint }[] = [];
  for (const [nameCell, valueCell] of rows) {
    if (nameCell === undefined || valueCell === undefined) throw new Error('short §4.7 row');
    const module = valueCell.match(/module: \**(0x[0-9A-F]+)/);
    const linux = valueCell.match(/Linux[^:]*: \**(0x[0-9A-F]+)/);
    if (module && linux) {
      checks.push({ name: strip(nameCell), value: num(module[1] as string) });
      checks.push({ name: `${strip(nameCell)}_LINUX`, value: num(linux[1] as string) });
      continue;
    }
    const names = expandNames(nameCell);
    const values = expandValues(valueCell);
    if (names.length !== values.length) throw new Error(`§4.7: ${nameCell} vs ${valueCell}`);
    names.forEach((name, i) => checks.push({ name, value: values[i] as bigint }));
  }

  it('every row of the table, and tdxStatusName names each one', () => {
    expect(rows).toHaveLength(34);
    expect(checks).toHaveLength(43);
    for (const { name, value } of checks) {
      expectBigint(tdxStatus, name, value);
      expect(tdxStatus.tdxStatusName(value)).toBe(name);
    }
  });

  it('the comparison mask and the Linux software codes', () => {
    const mask = s.match(/`status & (0x[0-9A-F]+)` \(`TDX_SEAMCALL_STATUS_MASK`\)/)?.[1];
    expect(tdxStatus.TDX_SEAMCALL_STATUS_MASK).toBe(num(mask ?? 'x'));
    const sw = lineOf(s, 'Linux software-defined codes');
    const defs = all(sw, /`(TDX_\w+) = ([^`]+)`/g);
    expect(defs).toHaveLength(6);
    for (const [, name, expr] of defs) {
      const value = (expr as string)
        .split(' | ')
        .map((term) => {
          const field = term.match(/^bits (\d+):(\d+) = (0x[0-9A-F]+)$/);
          if (field) return num(field[3] as string) << BigInt(field[2] as string);
          if (term === 'SW_ERROR') return tdxStatus.TDX_SW_ERROR;
          return evalExpr(term);
        })
        .reduce((a, b) => a | b, 0n);
      expectBigint(tdxStatus, name as string, value);
    }
    expect(tdxStatus.isTdxError(tdxStatus.TDX_ERROR)).toBe(true);
  });
});

/** §4.8 operand ids by name, as the document lists them. */
function operandIds(): Map<string, number> {
  const text = section('4.8').split('\n')[0] ?? '';
  const ids = new Map<string, number>();
  for (const [, name, v, hexV] of all(text, /`([A-Z0-9_]+) (\d+)(?: \((0x[0-9A-Fa-f]+)\))?`/g)) {
    if (hexV !== undefined) expect(Number(hexV), `${name} decimal and hex agree`).toBe(Number(v));
    ids.set(name as string, Number(v));
  }
  for (const [, lo, hi, vlo, vhi] of all(text, /`R(\d+)–R(\d+) (\d+)–(\d+)`/g)) {
    expect(Number(hi) - Number(lo)).toBe(Number(vhi) - Number(vlo));
    for (let i = 0; i <= Number(hi) - Number(lo); i++) ids.set(`R${Number(lo) + i}`, Number(vlo) + i);
  }
  return ids;
}

describe('§4.8 operand ids', () => {
  const s = section('4.8');

  it('every operand id, including the R10–R15 range', () => {
    const ids = operandIds();
    expect(ids.size).toBe(36);
    for (const [name, id] of ids) expectNumber(tdxStatus, `TDX_OPERAND_ID_${name}`, BigInt(id));
  });

  it('the worked examples and the Linux names', () => {
    const busy = all(s, /= `(0x[0-9A-F]{16})`/g).map((m) => num(m[1] as string));
    expect(busy).toHaveLength(2);
    expect(busy.map(tdxStatus.tdxStatusName)).toEqual(['TDX_OPERAND_BUSY|SEPT_TREE', 'TDX_OPERAND_BUSY|RCX']);
    const linux = all(s, /`(?:TDX_OPERAND_ID)?_(\w+) (0x[0-9a-f]+)`/g);
    expect(linux).toHaveLength(4);
    for (const [, name, v] of linux) {
      expectNumber(tdxStatus, `TDX_OPERAND_ID_${name === 'SEPT' ? 'SEPT_TREE' : name}`, num(v as string));
    }
  });

  it('the two ACCEPT statuses carry a level in the low bits', () => {
    expect(s).toMatch(/low bits of `TDX_PAGE_ALREADY_ACCEPTED` and `TDX_PAGE_SIZE_MISMATCH` hold, instead of an operand id, the \*\*S-EPT level/);
    expect(tdxStatus.tdxStatusName(tdxStatus.TDX_PAGE_SIZE_MISMATCH | 2n)).toBe('TDX_PAGE_SIZE_MISMATCH|level=2');
  });
});

describe('§4.9 extended exit qualification', () => {
  const s = section('4.9');

  it('types and layout', () => {
    const types = all(lineOf(s, '* Types:'), /`([A-Z_]+) (\d+)`/g);
    expect(types).toHaveLength(7);
    for (const [, name, v] of types) {
      expectNumber(tdxStatus, `TDX_EXT_EXIT_QUAL_TYPE_${name}`, num(v as string));
      expect(tdxStatus.decodeEeq(BigInt(v as string)).typeName).toBe(name);
    }
    const layout = lineOf(s, '* Layout:').match(/bits (\d+):(\d+) = type; bits 31:4 reserved; bits (\d+):(\d+) = info/);
    expect(layout).not.toBeNull();
    const [, tHi, tLo, iHi, iLo] = (layout as RegExpMatchArray).map((x) => (/^\d+$/.test(x) ? BigInt(x) : 0n));
    expect(tdxStatus.TDX_EXT_EXIT_QUAL_TYPE_MASK).toBe(genmask(tHi as bigint, tLo as bigint));
    expect(tdxStatus.TDX_EXT_EXIT_QUAL_INFO_MASK).toBe(genmask(iHi as bigint, iLo as bigint));
    expect(tdxStatus.TDX_EXT_EXIT_QUAL_INFO_SHIFT).toBe(iLo);
  });

  it('KVM constant spellings', () => {
    const defs = all(lineOf(s, '* KVM constants:'), /`(TDX_EXT_EXIT_QUAL_\w+) = ([^`]+)`/g);
    expect(defs).toHaveLength(5);
    for (const [, name, v] of defs) {
      const value = evalExpr(v as string);
      if (/_MASK$|_SHIFT$/.test(name as string)) expectBigint(tdxStatus, name as string, value);
      else expectNumber(tdxStatus, name as string, value);
    }
  });

  it('ACCEPT info field positions', () => {
    const info = lineOf(s, '* Info for ACCEPT');
    const field = (re: RegExp): bigint => {
      const m = info.match(re);
      if (!m) throw new Error(`§4.9 info: no match for ${re}`);
      return m[2] === undefined ? 1n << BigInt(m[1] as string) : genmask(BigInt(m[1] as string), BigInt(m[2]));
    };
    const max = { reqLevel: 0, errLevel: 0, state: 0, leaf: false };
    expect(BigInt(tdxStatus.makeAcceptEeqInfo({ ...max, reqLevel: 7 }))).toBe(field(/bits (\d+):(\d+) = requested S-EPT level/));
    expect(BigInt(tdxStatus.makeAcceptEeqInfo({ ...max, errLevel: 7 }))).toBe(field(/bits (\d+):(\d+) = level where the error/));
    expect(BigInt(tdxStatus.makeAcceptEeqInfo({ ...max, state: 255 }))).toBe(field(/bits (\d+):(\d+) = public S-EPT state/));
    expect(BigInt(tdxStatus.makeAcceptEeqInfo({ ...max, leaf: true }))).toBe(field(/bit (\d+)()? = that entry is a leaf/));
  });
});

describe('§4.10 EPT-violation qualification and error-code bits', () => {
  const s = section('4.10');
  const phrases: [string, string][] = [
    ['data read', 'EPT_VIOLATION_ACC_READ'],
    ['data write', 'EPT_VIOLATION_ACC_WRITE'],
    ['instruction fetch', 'EPT_VIOLATION_ACC_INSTR'],
    ['entry readable', 'EPT_VIOLATION_PROT_READ'],
    ['writable', 'EPT_VIOLATION_PROT_WRITE'],
    ['executable', 'EPT_VIOLATION_PROT_EXEC'],
    ['executable-for-user', 'EPT_VIOLATION_EXEC_FOR_USER'],
    ['GLA valid', 'EPT_VIOLATION_GVA_IS_VALID'],
    ['access was to the translated linear address', 'EPT_VIOLATION_GVA_TRANSLATED'],
    ['NMI unblocking due to IRET', 'INTR_INFO_UNBLOCK_NMI'],
  ];

  it('exit-qualification bits', () => {
    for (const [phrase, name] of phrases) {
      const bit = s.match(new RegExp(`bit (\\d+) ${phrase.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![-\\w])`))?.[1];
      expect(bit, phrase).toBeDefined();
      expectNumber(vmx, name, 1n << BigInt(bit as string));
    }
    const prot = s.match(/`EPT_VIOLATION_PROT_MASK` = bits (\d+)–(\d+)/);
    expect(BigInt(vmx.EPT_VIOLATION_PROT_MASK)).toBe(genmask(BigInt(prot?.[2] ?? -1), BigInt(prot?.[1] ?? -1)));
    const cleared = s.match(/clears bits (\d+):(\d+)\*\*/);
    expect(BigInt(vmx.TDX_EXIT_QUAL_CLEARED_BITS)).toBe(genmask(BigInt(cleared?.[1] ?? -1), BigInt(cleared?.[2] ?? -1)));
  });

  it('page-fault error-code bits', () => {
    const bits = all(s, /`(PFERR_\w+)`\s*\(?bit \**(\d+)/g);
    expect(bits).toHaveLength(8);
    for (const [, name, bit] of bits) {
      const full = /_MASK$|_ACCESS$/.test(name as string) ? (name as string) : `${name}_MASK`;
      expectBigint(kvmApi, full, 1n << BigInt(bit as string));
    }
  });
});

describe('§4.11 TD attributes, controls and metadata', () => {
  const s = section('4.11');

  it('TD attribute bits', () => {
    const attrs = all(lineOf(s, '* TD ATTRIBUTES:'), /`([A-Z_]+) (?:bit )?(\d+)`/g);
    expect(attrs).toHaveLength(12);
    for (const [, name, bit] of attrs) expectBigint(tdxStatus, `TD_ATTR_${name}`, 1n << BigInt(bit as string));
  });

  it('TDCS field ids', () => {
    const ids = all(lineOf(s, '* TDCS field ids:'), /`(\w+) = (0x[0-9A-F]+)`/g);
    expect(ids).toHaveLength(5);
    for (const [, name, v] of ids) expectBigint(tdxStatus, name as string, num(v as string));
  });

  it('TD_CTLS bits, FLEXIBLE_PENDING_VE and config flags', () => {
    const [flex, ctls] = lineOf(s, '* `TDCS_CONFIG_FLEXIBLE_PENDING_VE').split('TD_CTLS bits:');
    const f = flex?.match(/`(TDCS_CONFIG_FLEXIBLE_PENDING_VE) = bit (\d+)`/);
    expectBigint(tdxStatus, f?.[1] ?? 'missing', 1n << BigInt(f?.[2] ?? 0));
    const bits = all(ctls ?? '', /`([A-Z_0-9]+) = (?:bit )?(\d+)`/g);
    expect(bits).toHaveLength(5);
    for (const [, name, bit] of bits) expectBigint(tdxStatus, `TD_CTLS_${name}`, 1n << BigInt(bit as string));
    const flags = all(lineOf(s, '* TD_PARAMS.config_flags:'), /`([A-Z_]+) = bit (\d+)`/g);
    expect(flags).toHaveLength(2);
    for (const [, name, bit] of flags) expectBigint(tdxStatus, `TDX_CONFIG_FLAGS_${name}`, 1n << BigInt(bit as string));
  });
});

describe('§4.12 KVM uAPI', () => {
  it('every constant in the list', () => {
    const s = section('4.12').split('\n')[0] ?? '';
    let prev = '';
    let checked = 0;
    for (const [, token] of all(s, /`([^`]+)`/g)) {
      const t = token as string;
      const def = t.match(/^(…?[A-Z_0-9]+) = (.+)$/);
      if (def) {
        const name = (def[1] as string).startsWith('…')
          ? prev.slice(0, prev.lastIndexOf('_')) + (def[1] as string).slice(1)
          : (def[1] as string);
        expectNumber(kvmApi, name, evalExpr(def[2] as string));
        if (name.startsWith('KVM_EXIT_') && !name.includes('LONG_MODE')) {
          expect(kvmApi.KVM_EXIT_NAMES[Number(evalExpr(def[2] as string))]).toBe(name);
        }
        prev = name;
        checked++;
        continue;
      }
      const sizes = all(t, /(4K|2M|1G) ([0-9<]+)/g);
      if (sizes.length > 0) {
        for (const [, size, v] of sizes) expectNumber(kvmApi, `KVM_MAP_GPA_RANGE_PAGE_SZ_${size}`, evalExpr(v as string));
        checked += sizes.length;
        continue;
      }
      const ioctl = t.match(/^([A-Z_]+) (\d+)$/);
      if (!ioctl) throw new Error(`§4.12: unrecognised token ${t}`);
      expectNumber(kvmApi, `KVM_TDX_${ioctl[1]}`, num(ioctl[2] as string));
      checked++;
    }
    expect(checked).toBe(25);
  });
});

describe('§4.13 page-fault results and §4.14 thresholds', () => {
  it('RET_PF_* values and names', () => {
    const codes = all(section('4.13'), /`(RET_PF_\w+) (\d+)`/g);
    expect(codes).toHaveLength(7);
    for (const [, name, v] of codes) {
      expectNumber(kvmApi, name as string, num(v as string));
      expect(kvmApi.RET_PF_NAMES[Number(v)]).toBe(name);
    }
  });

  it('zero-step and loop bounds', () => {
    const defs = all(section('4.14'), /`(\w+) = ([^`]+)`/g);
    expect(defs).toHaveLength(6);
    for (const [, name, v] of defs) expectNumber(tdxStatus, name as string, evalExpr(v as string));
  });
});

describe('§5a.1 S-EPT state catalogue', () => {
  it('encoding, public code and leaf flag of every state', () => {
    const seen: string[] = [];
    for (const [stateCell, encCell, pubCell, leafCell] of tableRows(section('5a.1'))) {
      const names = (stateCell ?? '').replace(/\(.*?\)/g, '').split(',').map((n) => n.trim());
      const encs = (encCell ?? '').split(',').map((e) => Number(e.trim()));
      const pubs = (pubCell ?? '').replace(/\(.*?\)/g, '').split(',').map((p) => Number(p.trim()));
      expect(encs, stateCell).toHaveLength(names.length);
      expect(pubs, stateCell).toHaveLength(names.length);
      names.forEach((name, i) => {
        const state = name as SeptState;
        expect(SEPT_STATE_ENCODING[state], name).toBe(encs[i]);
        expect(SEPT_STATE_PUBLIC[state], name).toBe(pubs[i]);
        expect(septIsLeaf(state), name).toBe(leafCell === 'yes');
        seen.push(name);
      });
    }
    expect(seen.sort()).toEqual([...SEPT_STATES].sort());
  });
});

describe('§5b.1 TDX-module state variables', () => {
  const s = section('5b.1');

  it('TDR lifecycle and TDCS op_state', () => {
    const lifecycle = all(lineOf(s, '* TDR lifecycle:'), /`([A-Z_]+) (\d+)`/g);
    expect(lifecycle).toHaveLength(4);
    for (const [, name, v] of lifecycle) expectNumber(tdxStatus, `TDR_LIFECYCLE_${name}`, num(v as string));
    const op = all(lineOf(s, '* TDCS op_state:'), /`([A-Z_]+) (\d+)`/g);
    expect(op).toHaveLength(3);
    for (const [, name, v] of op) expectNumber(tdxStatus, `OP_STATE_${name}`, num(v as string));
  });

  it('TDVPS vCPU state and last TD exit', () => {
    const [vcpu, last] = lineOf(s, '* TDVPS vCPU state:').split('last TD exit:');
    const states = all(vcpu ?? '', /`([A-Z_]+) (0x[0-9A-F]+)`/g);
    expect(states).toHaveLength(5);
    for (const [, name, v] of states) expectNumber(tdxStatus, `TDVPS_VCPU_${name}`, num(v as string));
    const exits = all(last ?? '', /`([A-Z_]+) (\d+)`/g);
    expect(exits).toHaveLength(3);
    for (const [, name, v] of exits) expectNumber(tdxStatus, `TDVPS_LAST_EXIT_${name}`, num(v as string));
  });
});
