/**
 * End-to-end tests of the `tdxsim` command: the compiled CLI is launched with `node bin/tdxsim.js …` in a
 * scratch directory, and only what a user sees is checked: exit code, stdout, stderr and the files left
 * behind. Exit codes: 0 ok, 1 the model reached a failure, 2 bad input.
 */
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { readLog } from '../../src/log/reader.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildCli,
  deliveries,
  escapeRegExp,
  example,
  fields,
  findInOrder,
  logLines,
  message,
  resealLog,
  scratchDir,
  splitLines,
  tdxsim,
  type CliResult,
} from './helpers.ts';

const dirs: string[] = [];
/** A scratch directory removed after the file's tests. */
function tmp(): string {
  const d = scratchDir();
  dirs.push(d);
  return d;
}

beforeAll(() => {
  buildCli();
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** `# 67 messages; outcome: ok` and the like: the last outcome line `run` prints. */
function outcomeLine(r: CliResult): string | undefined {
  return r.lines.filter((l) => /^# \d+ messages; outcome: /.test(l)).at(-1);
}

/** The actors whose state `replay` printed (`guest.vcpu0  [inVeHandler]`). */
function actorHeadings(r: CliResult): Map<string, string> {
  const m = new Map<string, string>();
  for (const l of r.lines) {
    const h = /^(\S+)  \[(.*)\]/.exec(l);
    if (h) m.set(h[1]!, h[2]!);
  }
  return m;
}

/** Every SPTE value in the TDP MMU's page tables, from `replay --json`. */
function mmuSptes(state: unknown): string[] {
  const pages = (state as { actors: Record<string, { context: { pages: Record<string, Record<string, string>> } }> })
    .actors['kvm.mmu']!.context.pages;
  return Object.values(pages).flatMap((page) => Object.values(page));
}

describe('tdxsim run examples/mmio-ve: a TD guest reading a device register', () => {
  let dir: string;
  let out: CliResult;
  beforeAll(() => {
    dir = tmp();
    out = tdxsim(dir, 'run', example('mmio-ve'), '--log', 'X');
  });

  it('exits 0 with nothing on stderr', () => {
    expect(out.stderr).toBe('');
    expect(out.status).toBe(0);
  });

  it('prints the whole #VE MMIO flow, from the first TD entry to the value returned in R11, in order', () => {
    const { missing, seqs } = findInOrder(deliveries(out.lines), [
      message('TDH.VP.ENTER'),
      message('EPT_VIOLATION (VM exit)'),
      message('EPT_VIOLATION (TD exit)'),
      message('SPTE_CMPXCHG', /\bnewSpte=0x00008000fe000008 mmio gen=1 /),
      message('#VE'),
      message('TDG.VP.VEINFO.GET'),
      message('TDG.VP.VMCALL<#VE.RequestMMIO>'),
      message('TDCALL (TD exit)'),
      message('KVM_EXIT_MMIO', /\bphys_addr=0xfe000000 len=4 is_write=0\b/),
      fields(/\bR11=0x1af41000\b/),
    ]);
    expect(missing).toBeNull();
    expect(seqs).toHaveLength(10);
  });

  it('numbers the printed messages 1, 2, 3, … and ends with "outcome: ok"', () => {
    const ds = deliveries(out.lines);
    expect(ds.length).toBeGreaterThan(10);
    expect(ds.map((d) => d.seq)).toEqual(ds.map((_, i) => i + 1));
    expect(outcomeLine(out)).toBe(`# ${ds.length} messages; outcome: ok`);
  });

  it('writes the log to the --log file: a header, one event per printed message, an end record', () => {
    const lines = logLines(path.join(dir, 'X'));
    const log = readLog(path.join(dir, 'X'));
    const ds = deliveries(out.lines);
    expect(lines).toHaveLength(ds.length + 2);
    expect(log.end).toMatchObject({ type: 'end', steps: ds.length, outcome: { status: 'ok' } });
    expect(log.events.map((r) => [r.seq, r.name])).toEqual(
      ds.map((d) => [d.seq, d.name.replace(/ \((VM exit|TD exit|return)\)$/, '')]),
    );
    // Shorter than a block (1024 events): no checkpoint index beside it.
    expect(readdirSync(dir)).toEqual(['X']);
  });

  it('also runs from the bundled example name alone, writing mmio-ve.log.jsonl in the current directory', () => {
    const d = tmp();
    const r = tdxsim(d, 'run', 'mmio-ve');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(outcomeLine(r)).toMatch(/outcome: ok$/);
    expect(readdirSync(d)).toEqual(['mmio-ve.log.jsonl']);
    // Same scenario file, same scheduler: the same log as the explicit path gives.
    expect(readFileSync(path.join(d, 'mmio-ve.log.jsonl'), 'utf8')).toBe(readFileSync(path.join(dir, 'X'), 'utf8'));
  });
});

describe('tdxsim run examples/vmx-mmio: the same program in a normal VMX guest', () => {
  let out: CliResult;
  beforeAll(() => {
    out = tdxsim(tmp(), 'run', example('vmx-mmio'));
  });

  it('exits 0 with outcome ok', () => {
    expect(out.stderr).toBe('');
    expect(out.status).toBe(0);
    expect(outcomeLine(out)).toMatch(/outcome: ok$/);
  });

  it('installs the VMX MMIO SPTE (W|X, generation 2) and then takes EPT_MISCONFIG exits', () => {
    const { missing } = findInOrder(deliveries(out.lines), [
      message('EPT_VIOLATION (VM exit)'),
      message('SPTE_CMPXCHG', /\bnewSpte=0x00000000fe000016 mmio gen=2 /),
      message('EPT_MISCONFIG (VM exit)'),
      message('KVM_EXIT_MMIO'),
    ]);
    expect(missing).toBeNull();
    expect(out.stdout).toContain('0x00000000fe000016 mmio gen=2');
  });

  it('never mentions #VE or a TDCALL', () => {
    expect(out.lines.filter((l) => l.includes('#VE') || l.includes('TDG.'))).toEqual([]);
  });
});

describe('determinism: the same command writes the same log', () => {
  for (const name of ['mmio-ve', 'vmx-mmio']) {
    it(`two runs of ${name} (in different directories) write byte-identical logs`, () => {
      const [a, b] = [tmp(), tmp()];
      expect(tdxsim(a, 'run', example(name), '--log', 'run.jsonl').status).toBe(0);
      expect(tdxsim(b, 'run', example(name), '--log', 'run.jsonl').status).toBe(0);
      const first = readFileSync(path.join(a, 'run.jsonl'), 'utf8');
      expect(splitLines(first).length).toBeGreaterThan(2);
      expect(readFileSync(path.join(b, 'run.jsonl'), 'utf8')).toBe(first);
    });
  }

  it('--seed 7 twice gives identical logs, and the header records the seeded scheduler', () => {
    const d = tmp();
    expect(tdxsim(d, 'run', example('mmio-ve'), '--seed', '7', '--log', 'a.jsonl').status).toBe(0);
    expect(tdxsim(d, 'run', example('mmio-ve'), '--seed', '7', '--log', 'b.jsonl').status).toBe(0);
    const a = readFileSync(path.join(d, 'a.jsonl'), 'utf8');
    expect(readFileSync(path.join(d, 'b.jsonl'), 'utf8')).toBe(a);
    expect(JSON.parse(splitLines(a)[0]!)).toMatchObject({ scheduler: { kind: 'random', seed: 7 } });
  });

  it('--json prints exactly the log\'s event and end lines, and nothing else', () => {
    const d = tmp();
    const r = tdxsim(d, 'run', example('mmio-ve'), '--json', '--log', 'j.jsonl');
    expect(r.status).toBe(0);
    const log = logLines(path.join(d, 'j.jsonl'));
    expect(JSON.parse(log[0]!)).toMatchObject({ type: 'header' });
    expect(r.lines).toEqual(log.slice(1));
    expect(JSON.parse(r.lines.at(-1)!)).toMatchObject({ type: 'end', outcome: { status: 'ok' } });
  });
});

describe('tdxsim replay: state at any step, re-derived from a log', () => {
  let dir: string;
  const LOG = 'mmio.jsonl';
  let events: number;
  beforeAll(() => {
    dir = tmp();
    expect(tdxsim(dir, 'run', example('mmio-ve'), '--log', LOG).status).toBe(0);
    events = logLines(path.join(dir, LOG)).length - 2;
  });

  it('--verify re-executes the whole log, exits 0 and says so', () => {
    const r = tdxsim(dir, 'replay', LOG, '--verify');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.lines.filter((l) => l.startsWith('# verified:'))).toEqual([
      expect.stringMatching(new RegExp(`^# verified: all ${events} events re-derived .*; hash chain intact; outcome ok$`)),
    ]);
  });

  // mmio-ve: the TD build takes steps 1–63; the first #VE is step 97, the MMIO SPTE is installed at 88.
  it('--to 97 --actor guest.vcpu0 shows only the guest, inside its #VE handler', () => {
    const r = tdxsim(dir, 'replay', LOG, '--to', '97', '--actor', 'guest.vcpu0');
    expect(r.status).toBe(0);
    expect(r.lines).toContainEqual(expect.stringMatching(/^# state after step 97:.*→ guest\.vcpu0 +#VE\b/));
    expect([...actorHeadings(r)]).toEqual([['guest.vcpu0', 'gettingVeInfo']]);
  });

  it("--to 88 prints the step's message decoded as a run prints it: the MMIO SPTE with its generation", () => {
    const r = tdxsim(dir, 'replay', LOG, '--to', '88', '--actor', 'kvm.mmu');
    expect(r.status).toBe(0);
    expect(r.lines).toContainEqual(expect.stringMatching(/^# state after step 88: .*SPTE_CMPXCHG .*newSpte=0x00008000fe000008 mmio gen=1 gpa=0x8000fe000000/));
  });

  it('--to a Secure-EPT walk prints its entries by S-EPT state (a log of private-touch-ve)', () => {
    expect(tdxsim(dir, 'run', example('private-touch-ve'), '--log', 'ptv.jsonl').status).toBe(1);
    const walk = readFileSync(path.join(dir, 'ptv.jsonl'), 'utf8').split('\n').findIndex((l) => l.includes('"EPT_WALK_RESULT"') && l.includes('"secure"'));
    // Line 1 is the header, so line i + 1 holds step i.
    const r = tdxsim(dir, 'replay', 'ptv.jsonl', '--to', String(walk), '--actor', 'tdx');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.lines).toContainEqual(expect.stringMatching(/^# state after step \d+: +tdx +→ hw\.cpu0 +EPT_WALK_RESULT +ept=secure gpa=0x300000 path=L4\[0x0\]=0x80e0000000000000 FREE keyid=17$/));
  });

  it('--to 0 shows every actor before the first message, with the first KVM_RUN in flight', () => {
    const r = tdxsim(dir, 'replay', LOG, '--to', '0');
    expect(r.status).toBe(0);
    expect(r.lines).toContain('# state before the first step');
    expect([...actorHeadings(r).keys()].sort()).toEqual(['guest.vcpu0', 'hw.cpu0', 'hw.mem', 'kvm.mmu', 'kvm.vcpu0', 'kvm.vm', 'tdx', 'vmm']);
    expect(actorHeadings(r).get('guest.vcpu0')).toBe('notEntered');
    expect(actorHeadings(r).get('tdx')).toBe('noTd');
    expect(r.lines).toContain('# in flight: KVM_SET_MEMORY_ATTRIBUTES → kvm.vm');
  });

  it('--json --to 88 prints one JSON object whose MMU page tables hold the MMIO SPTE', () => {
    const r = tdxsim(dir, 'replay', LOG, '--json', '--to', '88');
    expect(r.status).toBe(0);
    expect(r.lines).toHaveLength(1);
    const state = JSON.parse(r.lines[0]!) as { step: number };
    expect(state.step).toBe(88);
    expect(mmuSptes(state)).toContain('0x8000fe000008');
  });

  it('--json --to 86, before KVM installs it, has no MMIO SPTE yet', () => {
    const r = tdxsim(dir, 'replay', LOG, '--json', '--to', '86');
    expect(r.status).toBe(0);
    expect(mmuSptes(JSON.parse(r.lines[0]!))).not.toContain('0x8000fe000008');
  });

  it('refuses a step past the end of the log, an unknown actor, and a missing log file (exit 2)', () => {
    const past = tdxsim(dir, 'replay', LOG, '--to', String(events + 1));
    expect(past.status).toBe(2);
    expect(past.stderr).toBe(`tdxsim: --to ${events + 1}: the log has steps 0..${events}\n`);

    const actor = tdxsim(dir, 'replay', LOG, '--actor', 'nobody');
    expect(actor.status).toBe(2);
    expect(actor.stderr).toMatch(/^tdxsim: --actor nobody: no such actor/);

    const missing = tdxsim(dir, 'replay', 'missing.jsonl');
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/^tdxsim: missing\.jsonl:0: cannot read log/);
  });
});

describe('tdxsim replay --verify rejects a damaged or tampered log (exit 2, naming the line)', () => {
  let dir: string;
  let original: string;
  let lines: string[];
  beforeAll(() => {
    dir = tmp();
    expect(tdxsim(dir, 'run', example('mmio-ve'), '--log', 'original.jsonl').status).toBe(0);
    original = readFileSync(path.join(dir, 'original.jsonl'), 'utf8');
    lines = splitLines(original);
  });

  /** Writes `text` as `file` in the scratch dir and runs `replay file --verify` there. */
  function verify(file: string, text: string): CliResult {
    writeFileSync(path.join(dir, file), text);
    return tdxsim(dir, 'replay', file, '--verify');
  }

  it('the untouched log verifies (the baseline for every case below)', () => {
    expect(verify('copy.jsonl', original).status).toBe(0);
  });

  it('one character edited inside the payload of line 10 → hash mismatch at line 10', () => {
    const line = lines[9]!;
    const at = line.indexOf('"payload":{') + '"payload":{'.length;
    const digit = line.slice(at).search(/\d/) + at; // first digit inside the payload
    expect(digit).toBeGreaterThanOrEqual(at);
    const edited = line.slice(0, digit) + (line[digit] === '1' ? '2' : '1') + line.slice(digit + 1);
    const r = verify('edited.jsonl', [...lines.slice(0, 9), edited, ...lines.slice(10)].join('\n') + '\n');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^tdxsim: edited\.jsonl:10: hash mismatch/);
    expect(r.stdout).toBe('');
  });

  it('line 10 deleted → the chain breaks at line 10', () => {
    const r = verify('deleted.jsonl', [...lines.slice(0, 9), ...lines.slice(10)].join('\n') + '\n');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^tdxsim: deleted\.jsonl:10: hash mismatch/);
  });

  it('the header edited (without re-sealing) → hash mismatch at line 1', () => {
    const r = verify('header.jsonl', original.replace('"kind":"fifo"', '"kind":"fifO"'));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^tdxsim: header\.jsonl:1: hash mismatch: the header was edited/);
  });

  it('the end record removed (cut at a line boundary) → no end record, naming the new last line', () => {
    const r = verify('noend.jsonl', lines.slice(0, -1).join('\n') + '\n');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^tdxsim: noend\\.jsonl:${lines.length - 1}: the log has no end record`));
  });

  it('file cut in the middle of its last line (no trailing newline) → torn, naming the last line', () => {
    const last = lines.at(-1)!;
    const cut = original.length - 1 - Math.floor(last.length / 2);
    const r = verify('torn.jsonl', original.slice(0, cut));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^tdxsim: torn\\.jsonl:${lines.length}: torn last line`));
  });

  describe('re-sealed so the hash chain is intact: only re-execution can tell', () => {
    it('re-sealing without changes reproduces the original bytes (so the helper does no harm)', () => {
      expect(resealLog(original, () => {})).toBe(original);
    });

    it('a scheduler "choice" flipped → replay diverged at that line', () => {
      // The first event where FIFO did not take choice 0: flipping it delivers a different message.
      const target = lines.findIndex((l) => /"x":[1-9]/.test(l)) + 1;
      expect(target).toBeGreaterThan(1);
      const text = resealLog(original, (rec, line) => {
        if (line === target) rec.choice = 0;
      });
      expect(text).not.toBe(original);
      const r = verify('choice.jsonl', text);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`^tdxsim: choice\\.jsonl:${target}: replay diverged`));
    });

    it('a choice past the deliverable messages at line 10 → replay diverged at line 10', () => {
      const r = verify('choice10.jsonl', resealLog(original, (rec, line) => {
        if (line === 10) rec.choice = 5;
      }));
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/^tdxsim: choice10\.jsonl:10: replay diverged: choice 5 but only \d+ message\(s\) are deliverable/);
    });

    it('the scenario in the header changed (a device register value) → replay diverged at the first event', () => {
      const text = resealLog(original, (rec, line) => {
        if (line !== 1) return;
        const registers = (rec.scenario as { devices: { registers: Record<string, string> }[] }).devices[0]!.registers;
        expect(registers['0']).toBe('0x1af41000');
        registers['0'] = '0x1af41001';
      });
      const r = verify('scenario.jsonl', text);
      expect(r.status).toBe(2);
      // Line 2 is the first event: its state hash covers the device model holding the register.
      expect(r.stderr).toMatch(/^tdxsim: scenario\.jsonl:2: replay diverged/);
    });
  });
});

describe('tdxsim run with a bad scenario: exit 2, a precise message, and no log touched', () => {
  /** A TD with one MMIO device whose only vCPU runs `step` (on line 7) and then hlt. */
  const withStep = (step: string) =>
    [
      'name: bad',
      'vm: { type: tdx, gpaw: 48 }',
      'devices:',
      '  - { name: regs, kind: mmio-regs, gpa: 0xfe000000, size: 0x1000 }',
      'vcpus:',
      '  - program:',
      step,
      '      - { op: hlt }',
      '',
    ].join('\n');

  const cases: { what: string; yaml: string; stderr: RegExp }[] = [
    {
      what: 'a YAML syntax error → file:line:col of the error',
      yaml: ['name: bad', 'vm:', '  type: tdx', '  gpaw: @48', 'vcpus:', '  - program: [{ op: hlt }]', ''].join('\n'),
      stderr: /^tdxsim: bad\.yaml:4:9: .*reserved character @/,
    },
    {
      what: 'an unknown key in a program step → the step, its line, and the key',
      yaml: withStep('      - { op: load, gpa: 0x8000fe000000, size: 4, reg: rax, colour: red }'),
      // Reported at the key itself (line 7, the column of `colour`), not at the step that holds it.
      stderr: /^tdxsim: bad\.yaml:7:69: vcpus\[0\]\.program\[0\]\.colour: Unrecognized key: "colour"/,
    },
    {
      what: 'size: 3 → the size field and its line',
      yaml: withStep(['      - op: load', '        gpa: 0x8000fe000000', '        size: 3'].join('\n')),
      stderr: /^tdxsim: bad\.yaml:9:15: vcpus\[0\]\.program\[0\]\.size: access size must be 1, 2, 4 or 8 bytes/,
    },
    {
      what: 'a TD load from a private GPA (no shared bit) → the gpa field and the line of that step',
      yaml: withStep('      - { op: load, gpa: 0xfe000000, size: 4, reg: rax }'),
      stderr: /^tdxsim: bad\.yaml:7:\d+: vcpus\[0\]\.program\[0\]\.gpa: 0xfe000000 is a private GPA/,
    },
  ];

  let goodLog: Buffer;
  beforeAll(() => {
    const d = tmp();
    expect(tdxsim(d, 'run', example('mmio-ve'), '--log', 'good.jsonl').status).toBe(0);
    goodLog = readFileSync(path.join(d, 'good.jsonl'));
  });

  for (const c of cases) {
    it(c.what, () => {
      const d = tmp();
      writeFileSync(path.join(d, 'bad.yaml'), c.yaml);
      const r = tdxsim(d, 'run', 'bad.yaml');
      expect(r.stderr).toMatch(c.stderr);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.status).toBe(2);
      expect(r.stdout).toBe('');
      expect(readdirSync(d)).toEqual(['bad.yaml']); // no bad.log.jsonl
    });

    it(`${c.what.split(' → ')[0]}: an existing --log file is left byte-for-byte unchanged`, () => {
      const d = tmp();
      writeFileSync(path.join(d, 'bad.yaml'), c.yaml);
      writeFileSync(path.join(d, 'existing.jsonl'), goodLog);
      const r = tdxsim(d, 'run', 'bad.yaml', '--log', 'existing.jsonl');
      expect(r.status).toBe(2);
      expect(readFileSync(path.join(d, 'existing.jsonl')).equals(goodLog)).toBe(true);
    });
  }

  it('a missing scenario file → exit 2 naming it, and an existing --log file is left unchanged', () => {
    const d = tmp();
    writeFileSync(path.join(d, 'existing.jsonl'), goodLog);
    const r = tdxsim(d, 'run', 'nope.yaml', '--log', 'existing.jsonl');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^tdxsim: nope\.yaml: no such scenario file/);
    expect(readFileSync(path.join(d, 'existing.jsonl')).equals(goodLog)).toBe(true);
    expect(readdirSync(d)).toEqual(['existing.jsonl']);
  });

  it('a bad --seed → exit 2, and an existing --log file is left unchanged', () => {
    const d = tmp();
    writeFileSync(path.join(d, 'existing.jsonl'), goodLog);
    const r = tdxsim(d, 'run', example('mmio-ve'), '--seed', 'x', '--log', 'existing.jsonl');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--seed needs a non-negative integer, got "x"/);
    expect(readFileSync(path.join(d, 'existing.jsonl')).equals(goodLog)).toBe(true);
  });
});

describe('usage errors and help', () => {
  it('`run` without a scenario → exit 2 and says what is missing', () => {
    const r = tdxsim(tmp(), 'run');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/missing required argument 'scenario'/);
  });

  it('`replay x --to abc` → exit 2, complaining about --to before looking for the file', () => {
    const r = tdxsim(tmp(), 'replay', 'x', '--to', 'abc');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--to needs a non-negative integer, got "abc"/);
    expect(r.stderr).not.toMatch(/cannot read log/);
  });

  it('an unknown subcommand → exit 2', () => {
    const r = tdxsim(tmp(), 'bogus');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown command 'bogus'/);
  });

  it('`examples` → exit 0, listing each bundled scenario with its description', () => {
    const r = tdxsim(tmp(), 'examples');
    expect(r.status).toBe(0);
    expect(r.lines).toContainEqual(expect.stringMatching(/^mmio-ve +TD guest MMIO through #VE/));
    expect(r.lines).toContainEqual(expect.stringMatching(/^vmx-mmio +VMX guest MMIO through EPT_MISCONFIG/));
  });

  it('--help → exit 0 with usage listing the subcommands', () => {
    const r = tdxsim(tmp(), '--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^Usage: tdxsim /);
    for (const cmd of ['run', 'replay', 'examples']) expect(r.stdout).toMatch(new RegExp(`^\\s+${escapeRegExp(cmd)}\\b`, 'm'));
  });

  it('`run --help` → exit 0 with the run options', () => {
    const r = tdxsim(tmp(), 'run', '--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^Usage: tdxsim run \[options\] <scenario>/);
    expect(r.stdout).toContain('--log <file>');
  });
});

describe('a run stopped by --max-steps', () => {
  let dir: string;
  let out: CliResult;
  beforeAll(() => {
    dir = tmp();
    out = tdxsim(dir, 'run', example('mmio-ve'), '--max-steps', '5', '--log', 'bounded.jsonl');
  });

  it('is a model failure: exit 1, and the outcome line gives the reason', () => {
    expect(out.status).toBe(1);
    expect(outcomeLine(out)).toBe('# 5 messages; outcome: failure (step bound 5 reached with 2 message(s) still in flight)');
    expect(JSON.parse(logLines(path.join(dir, 'bounded.jsonl')).at(-1)!)).toMatchObject({
      type: 'end',
      steps: 5,
      outcome: { status: 'failure' },
    });
  });

  it('can be replayed to any of its steps', () => {
    const r = tdxsim(dir, 'replay', 'bounded.jsonl', '--to', '5');
    expect(r.status).toBe(0);
    expect(r.lines[0]).toBe('# bounded.jsonl: scenario mmio-ve, 5 steps, outcome failure (step bound 5 reached with 2 message(s) still in flight)');
  });

  // At commit 0a184f6 this failed: --verify rejected the untampered log with "replay diverged: the log
  // ends but 1 message(s) are still deliverable" (exit 2).
  it('verifies with --verify, since the log is exactly what tdxsim wrote', () => {
    const r = tdxsim(dir, 'replay', 'bounded.jsonl', '--verify');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
