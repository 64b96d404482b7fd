/**
 * The scenario format: what a user writes (YAML or JSON) to describe a VM, its memory layout, its devices
 * and each vCPU's guest program. Numbers may be written as integers or as hex strings; 64-bit values
 * become bigint. The same schema validates the scenario copy stored in every log header.
 */
import { z } from 'zod';
import { GUEST_REGS } from '../../machines/guest/program.ts';
import { policiesSchema } from '../policies.ts';
import { INVARIANTS, invariantNamed } from '../explore/invariants/index.ts';

const HEX_OR_DEC = /^(0[xX][0-9a-fA-F]+|[0-9]+)$/;

/** A 64-bit unsigned value: integer (YAML parses ints as bigint here) or a "0x…" string. */
export const u64 = z
  .union([z.bigint(), z.number().int(), z.string().regex(HEX_OR_DEC, 'expected a number or a hex string such as "0xfe000000"')])
  .transform((v) => BigInt(v))
  .refine((v) => v >= 0n && v < 1n << 64n, 'must fit in 64 bits, unsigned');

const smallInt = z.union([z.bigint(), z.number().int()]).transform((v) => Number(v));

const accessSize = smallInt.refine((n) => n === 1 || n === 2 || n === 4 || n === 8, 'access size must be 1, 2, 4 or 8 bytes');

const guestOp = z.discriminatedUnion('op', [
  z.strictObject({
    op: z.literal('load'),
    gpa: u64,
    /** Linear address the guest's page tables map to `gpa`; defaults to the direct map (see load.ts). */
    gla: u64.optional(),
    size: accessSize,
    reg: z.enum(GUEST_REGS as [string, ...string[]]).default('rax'),
  }),
  z.strictObject({ op: z.literal('store'), gpa: u64, gla: u64.optional(), size: accessSize, value: u64 }),
  /** Linux tdx_accept_memory(gpa, gpa + size): TDG.MEM.PAGE.ACCEPT in the largest sizes that fit. */
  z.strictObject({ op: z.literal('accept'), gpa: u64, size: u64 }),
  /** Linux tdx_map_gpa: TDG.VP.VMCALL<MapGPA> converting [gpa, gpa + size) to shared or back to private. */
  z.strictObject({ op: z.literal('mapGpa'), gpa: u64, size: u64, to: z.enum(['shared', 'private']) }),
  z.strictObject({ op: z.literal('hlt') }),
  /**
   * `out dx, al/ax/eax`: port I/O, a #VE in a TD that the guest turns into TDG.VP.VMCALL<Instruction.IO>.
   * Port 0x604 with 0x2000 is the ACPI power-off of QEMU's q35 machine (PM1a_CNT: SLP_EN, SLP_TYP 0 = S5).
   */
  z.strictObject({
    op: z.literal('out'),
    port: u64.refine((n) => n <= 0xffffn, 'an I/O port is 0..0xffff').transform((n) => Number(n)),
    size: smallInt.refine((n) => n === 1 || n === 2 || n === 4, 'port I/O is 1, 2 or 4 bytes'),
    value: u64,
  }),
]);

/** Instructions the #VE handler runs before TDG.VP.VEINFO.GET (loads and stores only). */
const prologueOp = z.discriminatedUnion('op', [
  z.strictObject({ op: z.literal('load'), gpa: u64, gla: u64.optional(), size: accessSize, reg: z.enum(GUEST_REGS as [string, ...string[]]).default('rax') }),
  z.strictObject({ op: z.literal('store'), gpa: u64, gla: u64.optional(), size: accessSize, value: u64 }),
]);

export const TD_ATTRIBUTE_NAMES = ['SEPT_VE_DISABLE'] as const;

const invariantName = z.string().refine((n) => invariantNamed(n) !== undefined, { error: (i) => `unknown invariant "${String(i.input)}"; known: ${INVARIANTS.map((x) => x.name).join(', ')}` });

/** `{ name, bound }`: only a bounded monitor takes a bound, and only one it can see exceeded. */
const boundedMonitor = z.strictObject({ name: invariantName, bound: smallInt.refine((n) => n >= 0, 'a bound of at least 0') }).superRefine((e, ctx) => {
  const spec = invariantNamed(e.name);
  if (spec === undefined) return;
  if (spec.defaultBound === undefined) ctx.addIssue({ code: 'custom', path: ['bound'], message: `invariant "${e.name}" takes no bound; bounded monitors: ${INVARIANTS.filter((x) => x.defaultBound !== undefined).map((x) => x.name).join(', ')}` });
  else if (spec.maxBound !== undefined && e.bound > spec.maxBound) ctx.addIssue({ code: 'custom', path: ['bound'], message: `a bound of at most ${spec.maxBound} for "${e.name}"` });
});

export const scenarioSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'lower-case letters, digits and dashes'),
  description: z.string().default(''),
  vm: z.strictObject({
    /** KVM_X86_TDX_VM (a TD) or a normal VMX guest. */
    type: z.enum(['tdx', 'vmx']),
    /** Guest physical-address width; picks the shared bit (47 or 51) and 4- or 5-level EPT (§2). */
    gpaw: smallInt.refine((n) => n === 48 || n === 52, 'gpaw must be 48 or 52 (§2)').default(48),
    /** TD attributes KVM lets userspace set (§4.11). */
    attributes: z.array(z.enum(TD_ATTRIBUTE_NAMES)).default([]),
  }),
  /** Kernel/module variants (src/policies.ts; `tdxsim policies` lists them). Defaults are upstream's. */
  policies: policiesSchema,
  /**
   * What `tdxsim explore` checks after every delivery, by name from the library (`tdxsim invariants`
   * lists it); a bounded monitor may take `{ name, bound }`. Absent: the library's defaults.
   */
  invariants: z.array(z.union([invariantName, boundedMonitor])).optional(),
  /** How the userspace VMM behaves where QEMU has choices (defaults: QEMU's). */
  vmm: z
    .strictObject({
      /** KVM_CAP_EXIT_HYPERCALL enabled for KVM_HC_MAP_GPA_RANGE; without it MapGPA fails with SUBFUNC_UNSUPPORTED. */
      mapGpaExit: z.boolean().default(true),
      /** Answer the first N MapGPA exits with EAGAIN (the guest sees RETRY) before doing any of them. */
      mapGpaEagain: smallInt.refine((n) => n >= 0, 'a count').default(0),
    })
    .default({ mapGpaExit: true, mapGpaEagain: 0 }),
  /** Userspace memory regions registered with KVM (KVM_SET_USER_MEMORY_REGION2), never device ranges. */
  memslots: z
    .array(z.strictObject({ gpa: u64, size: u64, guestMemfd: z.boolean().default(false) }))
    .default([]),
  devices: z
    .array(
      z.strictObject({
        name: z.string().min(1),
        kind: z.literal('mmio-regs'),
        /** Base GPA without the shared bit, as the VMM registers it. */
        gpa: u64,
        size: u64,
        registers: z.record(z.string().regex(HEX_OR_DEC, 'register offsets are numbers or hex strings'), u64).default({}),
      }),
    )
    .default([]),
  /**
   * TD only: the initial image, added at build time with TDH.MEM.PAGE.ADD and measured with TDH.MR.EXTEND
   * (§5b.3 step 4). Each page is given by its private GPA and the 8-byte words that are not zero.
   */
  image: z
    .array(z.strictObject({ gpa: u64, words: z.record(z.string().regex(HEX_OR_DEC, 'word offsets are numbers or hex strings'), u64).default({}) }))
    .default([]),
  vcpus: z
    .array(
      z.strictObject({
        program: z.array(guestOp).min(1, 'a vCPU needs at least one instruction'),
        veHandlerPrologue: z.array(prologueOp).default([]),
        /**
         * The #VE handler's answer to an EPT-violation #VE on private memory: Linux panics; `accept` is a
         * guest that accepts the faulting 4K page and retries (§6.ii B.3), which needs SEPT_VE_DISABLE off.
         */
        privateVe: z.enum(['panic', 'accept']).default('panic'),
      }),
    )
    .min(1, 'at least one vCPU'),
});

/** A scenario as written (before defaults and bigint conversion). */
export type ScenarioInput = z.input<typeof scenarioSchema>;
/** A validated scenario. */
export type Scenario = z.output<typeof scenarioSchema>;
