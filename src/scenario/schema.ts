/**
 * The scenario format: what a user writes (YAML or JSON) to describe a VM, its memory layout, its devices
 * and each vCPU's guest program. Numbers may be written as integers or as hex strings; 64-bit values
 * become bigint. The same schema validates the scenario copy stored in every log header, and is published
 * as a JSON Schema (jsonSchema.ts) for editors. Descriptions (`describe`) are what an editor shows on hover.
 */
import { z } from 'zod';
import { GUEST_REGS } from '../../machines/guest/program.ts';
import { policiesSchema } from '../policies.ts';
import { INVARIANTS, invariantNamed } from '../explore/invariants/index.ts';

const HEX_OR_DEC = /^(0[xX][0-9a-fA-F]+|[0-9]+)$/;

/**
 * What the JSON Schema says for the pieces whose zod form it cannot express (bigints, refinements): an
 * editor then checks them as the loader does. Keyed by the schema's definition, which `describe()` and
 * other clones share, so a described copy of a piece keeps its JSON form.
 */
export const JSON_SCHEMA_OVERRIDES = new Map<unknown, Record<string, unknown>>();
function withJsonSchema<T extends z.ZodType>(schema: T, json: Record<string, unknown>): T {
  JSON_SCHEMA_OVERRIDES.set(schema._zod.def, json);
  return schema;
}

const HEX_STRING = { type: 'string', pattern: HEX_OR_DEC.source };

/** A 64-bit unsigned value: integer (YAML parses ints as bigint here) or a "0x…" string. */
export const u64 = withJsonSchema(
  z
    .union([z.bigint(), z.number().int(), z.string().regex(HEX_OR_DEC, 'expected a number or a hex string such as "0xfe000000"')])
    .transform((v) => BigInt(v))
    .refine((v) => v >= 0n && v < 1n << 64n, 'must fit in 64 bits, unsigned'),
  { anyOf: [{ type: 'integer', minimum: 0 }, HEX_STRING], description: 'a 64-bit unsigned number: an integer or a hex string such as "0xfe000000"' },
);

const smallInt = z.union([z.bigint(), z.number().int()]).transform((v) => Number(v));
const oneOfInts = <N extends number>(allowed: readonly N[], message: string) =>
  withJsonSchema(smallInt.refine((n): n is N => (allowed as readonly number[]).includes(n), message), { type: 'integer', enum: [...allowed] });
const atLeast = (min: number, message: string) => withJsonSchema(smallInt.refine((n) => n >= min, message), { type: 'integer', minimum: min });

const accessSize = oneOfInts([1, 2, 4, 8] as const, 'access size must be 1, 2, 4 or 8 bytes');
const portSize = oneOfInts([1, 2, 4] as const, 'port I/O is 1, 2 or 4 bytes');
const ioPort = withJsonSchema(
  u64.refine((n) => n <= 0xffffn, 'an I/O port is 0..0xffff').transform((n) => Number(n)),
  { anyOf: [{ type: 'integer', minimum: 0, maximum: 0xffff }, HEX_STRING], description: 'an I/O port, 0..0xffff' },
);
const guestReg = z.enum(GUEST_REGS as [string, ...string[]]).default('rax').describe('the register the value is loaded into');
const gla = u64.optional().describe("linear address the guest's page tables map to gpa; default: the direct map");
const gpa = u64.describe('guest physical address; in a TD the shared bit (47 or 51) selects the shared alias');

const guestOp = z.discriminatedUnion('op', [
  z.strictObject({ op: z.literal('load'), gpa, gla, size: accessSize, reg: guestReg }).describe('a load of size bytes from gpa'),
  z.strictObject({ op: z.literal('store'), gpa, gla, size: accessSize, value: u64 }).describe('a store of size bytes of value to gpa'),
  z
    .strictObject({
      op: z.literal('accept'),
      gpa,
      size: u64,
      fallback: z
        .boolean()
        .optional()
        .describe('false: not Linux — a guest that never retries a failed size smaller, and panics instead (default true: Linux tries the next smaller size)'),
    })
    .describe('Linux tdx_accept_memory(gpa, gpa + size): TDG.MEM.PAGE.ACCEPT in the largest sizes that fit'),
  z
    .strictObject({ op: z.literal('mapGpa'), gpa, size: u64, to: z.enum(['shared', 'private']) })
    .describe('Linux tdx_map_gpa: TDG.VP.VMCALL<MapGPA> converting [gpa, gpa + size) to shared or back to private'),
  z.strictObject({ op: z.literal('hlt') }).describe('HLT: the vCPU stops here'),
  z
    .strictObject({ op: z.literal('out'), port: ioPort, size: portSize, value: u64 })
    .describe('out dx, al/ax/eax: a #VE in a TD that the guest turns into TDG.VP.VMCALL<Instruction.IO>; port 0x604 value 0x2000 is the q35 ACPI power-off'),
]);

/** Instructions the #VE handler runs before TDG.VP.VEINFO.GET (loads and stores only). */
const prologueOp = z.discriminatedUnion('op', [
  z.strictObject({ op: z.literal('load'), gpa, gla, size: accessSize, reg: guestReg }),
  z.strictObject({ op: z.literal('store'), gpa, gla, size: accessSize, value: u64 }),
]);

export const TD_ATTRIBUTE_NAMES = ['SEPT_VE_DISABLE'] as const;

const invariantName = withJsonSchema(
  z.string().refine((n) => invariantNamed(n) !== undefined, { error: (i) => `unknown invariant "${String(i.input)}"; known: ${INVARIANTS.map((x) => x.name).join(', ')}` }),
  { type: 'string', enum: INVARIANTS.map((i) => i.name), description: 'an invariant of the library (tdxsim invariants)' },
);

/** `{ name, bound }`: only a bounded monitor takes a bound, and only one it can see exceeded. */
const boundedMonitor = z.strictObject({ name: invariantName, bound: atLeast(0, 'a bound of at least 0') }).superRefine((e, ctx) => {
  const spec = invariantNamed(e.name);
  if (spec === undefined) return;
  if (spec.defaultBound === undefined) ctx.addIssue({ code: 'custom', path: ['bound'], message: `invariant "${e.name}" takes no bound; bounded monitors: ${INVARIANTS.filter((x) => x.defaultBound !== undefined).map((x) => x.name).join(', ')}` });
  else if (spec.maxBound !== undefined && e.bound > spec.maxBound) ctx.addIssue({ code: 'custom', path: ['bound'], message: `a bound of at most ${spec.maxBound} for "${e.name}"` });
});

const registerOffset = (what: string) => z.string().regex(HEX_OR_DEC, `${what} offsets are numbers or hex strings`);

export const scenarioSchema = z
  .strictObject({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'lower-case letters, digits and dashes').describe('the scenario name; logs are written as <name>.log.jsonl'),
    description: z.string().default('').describe('one line saying what the scenario shows'),
    vm: z
      .strictObject({
        type: z.enum(['tdx', 'vmx']).describe('KVM_X86_TDX_VM (a TD) or a normal VMX guest'),
        gpaw: withJsonSchema(oneOfInts([48, 52] as const, 'gpaw must be 48 or 52 (§2)').default(48), { type: 'integer', enum: [48, 52], default: 48 }).describe(
          'guest physical-address width: the shared bit is 47 (48) or 51 (52), 4- or 5-level EPT (§2)',
        ),
        attributes: z.array(z.enum(TD_ATTRIBUTE_NAMES)).default([]).describe('TD attributes KVM lets userspace set (§4.11)'),
      })
      .describe('the VM KVM creates'),
    policies: policiesSchema.describe("kernel and TDX-module variants (tdxsim policies); defaults are upstream's"),
    invariants: z
      .array(z.union([invariantName, boundedMonitor]))
      .optional()
      .describe("what tdxsim explore checks after every delivery (tdxsim invariants); a bounded monitor takes { name, bound }; absent: the library's defaults"),
    vmm: z
      .strictObject({
        mapGpaExit: z.boolean().default(true).describe('KVM_CAP_EXIT_HYPERCALL enabled for KVM_HC_MAP_GPA_RANGE; without it MapGPA fails with SUBFUNC_UNSUPPORTED'),
        mapGpaEagain: atLeast(0, 'a count').default(0).describe('answer the first N MapGPA exits with EAGAIN (the guest sees RETRY)'),
      })
      .default({ mapGpaExit: true, mapGpaEagain: 0 })
      .describe("how the userspace VMM behaves where QEMU has choices (defaults: QEMU's)"),
    memslots: z
      .array(z.strictObject({ gpa: u64, size: u64, guestMemfd: z.boolean().default(false).describe('backed by guest_memfd (private memory of a TD)') }))
      .default([])
      .describe('userspace memory regions registered with KVM_SET_USER_MEMORY_REGION2 (never device ranges); GPAs without the shared bit'),
    devices: z
      .array(
        z.strictObject({
          name: z.string().min(1),
          kind: z.literal('mmio-regs').describe('a register file emulated by the VMM'),
          gpa: u64.describe('base GPA without the shared bit, as the VMM registers it'),
          size: u64,
          registers: z.record(registerOffset('register'), u64).default({}).describe('initial register values by offset'),
        }),
      )
      .default([])
      .describe('MMIO devices emulated by the VMM'),
    image: z
      .array(z.strictObject({ gpa: u64, words: z.record(registerOffset('word'), u64).default({}).describe('the 8-byte words that are not zero, by offset') }))
      .default([])
      .describe('TD only: the initial image, added at build time with TDH.MEM.PAGE.ADD and measured with TDH.MR.EXTEND (§5b.3 step 4)'),
    vcpus: z
      .array(
        z.strictObject({
          program: z.array(guestOp).min(1, 'a vCPU needs at least one instruction').describe("the guest's instructions, in order"),
          veHandlerPrologue: z.array(prologueOp).default([]).describe('what the #VE handler runs before TDG.VP.VEINFO.GET (loads and stores)'),
          privateVe: z
            .enum(['panic', 'accept'])
            .default('panic')
            .describe("the #VE handler's answer to an EPT-violation #VE on private memory: Linux panics; accept is a guest that accepts the 4K page and retries (§6.ii B.3)"),
        }),
      )
      .min(1, 'at least one vCPU')
      .describe('one entry per vCPU'),
  })
  .describe('a tdxsim scenario: a VM, its memory and devices, and each vCPU\'s guest program (README "Scenarios")');

/** A scenario as written (before defaults and bigint conversion). */
export type ScenarioInput = z.input<typeof scenarioSchema>;
/** A validated scenario. */
export type Scenario = z.output<typeof scenarioSchema>;
