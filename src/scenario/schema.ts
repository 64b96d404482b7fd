/**
 * The scenario format: what a user writes (YAML or JSON) to describe a VM, its memory layout, its devices
 * and each vCPU's guest program. Numbers may be written as integers or as hex strings; 64-bit values
 * become bigint. The same schema validates the scenario copy stored in every log header, and is published
 * as a JSON Schema (jsonSchema.ts) for editors. Descriptions (`describe`) are what an editor shows on hover.
 */
import { z } from 'zod';
import { GUEST_REGS, TDVMCALL_OUT_REGS, UNSAFE_CONTEXTS, VP_INFO_OUT_REGS, type UnsafeContext } from '../../machines/guest/program.ts';
import { HOST_EXITS } from '../../machines/vmm/hostProgram.ts';
import { policiesSchema } from '../policies.ts';
import { INVARIANTS, invariantNamed } from '../explore/invariants/index.ts';
import { PLAYGROUND_SEAMCALLS } from '../../machines/host/kthread.ts';
import { tdxStatusCode } from '../arch/tdxStatus.ts';

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
const interruptVector = withJsonSchema(
  u64.refine((n) => n >= 32n && n <= 0xffn, 'an interrupt vector is 32..255 (0x20..0xff): 0..31 are exceptions').transform((n) => Number(n)),
  { anyOf: [{ type: 'integer', minimum: 32, maximum: 255 }, HEX_STRING], description: 'the interrupt vector, 32..255' },
);
const guestReg = z.enum(GUEST_REGS as [string, ...string[]]).default('rax').describe('the register the value is loaded into');
const gla = u64.optional().describe("linear address the guest's page tables map to gpa; default: the direct map");
const gpa = u64.describe('guest physical address; in a TD the shared bit (47 or 51) selects the shared alias');

const va = u64.describe("a guest virtual address the guest page tables (guestKernel.directMap) translate; the PTE's shared bit picks the alias");
const onePlace = (o: { gpa?: bigint; va?: bigint }) => (o.gpa === undefined) !== (o.va === undefined);
const ONE_PLACE = { message: 'give either gpa (the address as is) or va (through the guest page tables), not both', path: ['va'] };
const anyReg = z.enum(GUEST_REGS as [string, ...string[]]);
const smallU32 = withJsonSchema(
  u64.refine((n) => n <= 0xffffffffn, 'a 32-bit number').transform((n) => Number(n)),
  { anyOf: [{ type: 'integer', minimum: 0, maximum: 0xffffffff }, HEX_STRING], description: 'a 32-bit number' },
);
const resultsOf = (regs: readonly string[], what: string) =>
  z
    .partialRecord(z.enum(regs as [string, ...string[]]), anyReg)
    .default({})
    .describe(`${what} output registers to copy into program registers afterwards, e.g. { r10: rax, r11: rbx }`);

const guestOp = z.discriminatedUnion('op', [
  z
    .strictObject({ op: z.literal('load'), gpa: gpa.optional(), va: va.optional(), gla, size: accessSize, reg: guestReg })
    .refine(onePlace, ONE_PLACE)
    .describe('a load of size bytes from gpa, or from va through the guest page tables'),
  z
    .strictObject({ op: z.literal('store'), gpa: gpa.optional(), va: va.optional(), gla, size: accessSize, value: u64 })
    .refine(onePlace, ONE_PLACE)
    .describe('a store of size bytes of value to gpa, or to va through the guest page tables'),
  z
    .strictObject({ op: z.literal('spinUntil'), gpa: gpa.optional(), va: va.optional(), gla, size: accessSize, value: u64, reg: guestReg })
    .refine(onePlace, ONE_PLACE)
    .describe('while (READ_ONCE(*p) != value) ; — loads of a guest memory word another vCPU sets, until it reads value'),
  z
    .strictObject({ op: z.literal('loadUnalignedZeropad'), va: va.refine((v) => (v & 0xfffn) === 0xffcn, 'load_unaligned_zeropad is modelled 4 bytes before a page end: va must end in 0xffc'), reg: guestReg })
    .describe('load_unaligned_zeropad(va): 8 bytes of which the last 4 are in the next page; a fault there is fixed up with zeros'),
  z
    .strictObject({ op: z.literal('acceptMemory'), gpa, size: u64 })
    .describe('accept_memory(gpa, gpa + size): the lazy accept of unaccepted memory, under unaccepted_memory_lock with the accepting_list (needs guestKernel.unaccepted)'),
  z
    .strictObject({ op: z.literal('setMemoryEncrypted'), va, pages: atLeast(1, 'at least one page') })
    .describe('set_memory_encrypted(va, pages): shared → private in Linux\'s order (MapGPA and accept, then the PTEs; policy tdxEncStatusChangePrepare)'),
  z
    .strictObject({ op: z.literal('setMemoryDecrypted'), va, pages: atLeast(1, 'at least one page') })
    .describe('set_memory_decrypted(va, pages): private → shared in Linux\'s order (the PTEs, then MapGPA)'),
  z
    .strictObject({ op: z.literal('enterContext'), context: z.enum(UNSAFE_CONTEXTS as [UnsafeContext, ...UnsafeContext[]]) })
    .describe('the vCPU enters a context where a #VE cannot be handled (invariant no-ve-in-unsafe-context)'),
  z.strictObject({ op: z.literal('leaveContext') }).describe('the vCPU leaves its unsafe context'),
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
  z
    .strictObject({
      op: z.literal('hlt'),
      wait: z
        .boolean()
        .optional()
        .describe("true: Linux's tdx_safe_halt — TDG.VP.VMCALL<Instruction.HLT> with R12 = 0, woken by an interrupt, then STI (write cli before it, as the idle loop runs with interrupts off); default: halt for good with interrupts blocked (R12 = 1)"),
    })
    .describe('HLT (a TD asks for it with TDG.VP.VMCALL<Instruction.HLT>)'),
  z
    .strictObject({
      op: z.literal('ipi'),
      to: atLeast(0, 'a vCPU index').describe("the destination vCPU (its x2APIC ID is its index, TDH.VP.INIT's R8)"),
      vector: interruptVector,
    })
    .describe("Linux's x2APIC send of a fixed IPI: WRMSR of the ICR (0x830), a #VE in a TD that the guest turns into TDG.VP.VMCALL<Instruction.WRMSR>; KVM posts the vector to the destination vCPU"),
  z.strictObject({ op: z.literal('sti') }).describe('STI: RFLAGS.IF = 1, virtual interrupts are delivered at the next boundaries (a program starts with IF = 0)'),
  z.strictObject({ op: z.literal('cli') }).describe('CLI: RFLAGS.IF = 0'),
  z
    .strictObject({ op: z.literal('out'), port: ioPort, size: portSize, value: u64.optional(), reg: anyReg.optional().describe("send this register's low bytes instead of a constant") })
    .describe('out dx, al/ax/eax of value (or of reg): a #VE in a TD that the guest turns into TDG.VP.VMCALL<Instruction.IO>; port 0x604 value 0x2000 is the q35 ACPI power-off'),
  z
    .strictObject({ op: z.literal('in'), port: ioPort, size: portSize, reg: guestReg.describe('the register IN writes (AL/AX/EAX of it)') })
    .describe('in al/ax/eax, dx: a #VE in a TD; TDG.VP.VMCALL<Instruction.IO> with R13 = 0, the VMM answers and R11 lands in reg'),
  z
    .strictObject({
      op: z.literal('tdvmcall'),
      subfunction: smallU32.describe('R11: the GHCI sub-function (0x10000 GetTdVmCallInfo, 0x10001 MapGPA, 0x10002 GetQuote, 0x10003 ReportFatalError, 30 Instruction.IO, 48 #VE.RequestMMIO, …) or any other number'),
      r10: u64.default(0n).describe('R10: 0 for a GHCI call; anything else is a KVM hypercall number'),
      r12: u64.default(0n),
      r13: u64.default(0n),
      r14: u64.default(0n),
      r15: u64.default(0n),
      results: resultsOf(TDVMCALL_OUT_REGS, 'TDVMCALL'),
    })
    .describe('TDG.VP.VMCALL with the registers given, as the upstream selftests issue it (send a bad size, read R10 back)'),
  z.strictObject({ op: z.literal('vpInfo'), results: resultsOf(VP_INFO_OUT_REGS, 'TDG.VP.INFO') }).describe('TDG.VP.INFO: GPAW, ATTRIBUTES, NUM/MAX_VCPUS, VCPU_INDEX'),
  z
    .strictObject({
      op: z.literal('loop'),
      to: atLeast(0, 'a program index').describe('index (from 0) of the first instruction of the body; must come before the loop'),
      times: atLeast(1, 'at least one pass').optional().describe('run the body this many times in all'),
      until: z.strictObject({ reg: anyReg, equals: u64 }).optional().describe('stop once reg holds this value (checked after each pass)'),
    })
    .describe('a backward branch: repeat program[to..here) times times and/or until a register holds a value'),
  z.strictObject({ op: z.literal('check'), reg: anyReg, equals: u64 }).describe('a guest-side assertion: the run fails if reg does not hold equals'),
]);

/** Instructions the #VE handler runs before TDG.VP.VEINFO.GET (loads and stores only). */
const prologueOp = z.discriminatedUnion('op', [
  z.strictObject({ op: z.literal('load'), gpa, gla, size: accessSize, reg: guestReg }),
  z.strictObject({ op: z.literal('store'), gpa, gla, size: accessSize, value: u64 }),
]);

/** The flags of struct kvm_userspace_memory_region2 a host step may name. */
export const MEMSLOT_FLAG_NAMES = ['KVM_MEM_LOG_DIRTY_PAGES', 'KVM_MEM_READONLY', 'KVM_MEM_GUEST_MEMFD'] as const;

const vcpuIndex = atLeast(0, 'a vCPU index').describe('the vCPU (index into vcpus)');
const hostGpa = u64.describe('guest physical address as userspace addresses it (the shared bit is ignored); must lie in a memslot');

/** One step of the VMM's main thread after the build (machines/vmm/hostProgram.ts). */
const waitExitStep = z
  .strictObject({
    op: z.literal('waitExit'),
    vcpu: vcpuIndex,
    exit: z.enum(HOST_EXITS).describe('the exit reason expected next from this vCPU'),
    port: ioPort.optional().describe('KVM_EXIT_IO: io.port'),
    gpa: u64.optional().describe('KVM_EXIT_MMIO: mmio.phys_addr; KVM_EXIT_MEMORY_FAULT: memory_fault.gpa; KVM_EXIT_HYPERCALL: args[0]'),
    size: u64.optional().describe('io.size, mmio.len, memory_fault.size or (hypercall) args[1]'),
    direction: z.enum(['in', 'out']).optional().describe('KVM_EXIT_IO: KVM_EXIT_IO_IN or KVM_EXIT_IO_OUT'),
    write: z.boolean().optional().describe('KVM_EXIT_MMIO: mmio.is_write'),
    data: u64.optional().describe('io data (OUT), mmio.data (write) or (hypercall) args[2]'),
    nr: u64.optional().describe('KVM_EXIT_HYPERCALL: nr'),
    private: z.boolean().optional().describe('KVM_EXIT_MEMORY_FAULT: KVM_MEMORY_EXIT_FLAG_PRIVATE set'),
  })
  .superRefine((w, ctx) => {
    const allowed: Record<string, readonly string[]> = {
      KVM_EXIT_IO: ['port', 'size', 'direction', 'data'],
      KVM_EXIT_MMIO: ['gpa', 'size', 'write', 'data'],
      KVM_EXIT_HYPERCALL: ['gpa', 'size', 'data', 'nr'],
      KVM_EXIT_MEMORY_FAULT: ['gpa', 'size', 'private'],
    };
    for (const k of ['port', 'gpa', 'size', 'direction', 'write', 'data', 'nr', 'private'] as const) {
      if (w[k] !== undefined && !allowed[w.exit]!.includes(k)) ctx.addIssue({ code: 'custom', path: [k], message: `${w.exit} has no field "${k}"; it checks ${allowed[w.exit]!.join(', ')}` });
    }
  })
  .describe("wait until this vCPU's next exit reaches userspace and check the fields given; its thread stays in userspace until a run step");
const runStep = z
  .strictObject({
    op: z.literal('run'),
    vcpu: vcpuIndex,
    data: u64.optional().describe('run->mmio.data for an MMIO read, or the data of a port IN (default: what the device models answer)'),
    ret: withJsonSchema(smallInt, { type: 'integer' }).optional().describe('run->hypercall.ret for a KVM_EXIT_HYPERCALL: 0 (default) or -errno, e.g. -11 (EAGAIN) or -22 (EINVAL)'),
  })
  .describe('KVM_RUN again on a vCPU whose exit a waitExit took');
const hostStep = z.discriminatedUnion('op', [
  waitExitStep,
  runStep,
  z.strictObject({ op: z.literal('write'), gpa: hostGpa, size: accessSize, value: u64 }).describe("a store through the VMM's mapping of guest memory (the shared backing)"),
  z
    .strictObject({ op: z.literal('read'), gpa: hostGpa, size: accessSize, expect: u64.optional().describe('fail the run if the value read differs') })
    .describe("a load through the VMM's mapping of guest memory (the shared backing)"),
  z
    .strictObject({ op: z.literal('exit') })
    .describe('the VMM process exits, as QEMU after a shutdown request: every vCPU thread still in KVM_RUN is signalled, then each file is closed; the last close destroys the VM'),
  z
    .strictObject({ op: z.literal('waitMemory'), gpa: hostGpa, size: accessSize, value: u64 })
    .describe('read guest memory through the VMM\'s mapping again and again until it holds value (a flag the guest sets)'),
  z
    .strictObject({
      op: z.literal('setAttributes'),
      gpa,
      size: u64,
      to: z.enum(['shared', 'private']),
      expectRet: withJsonSchema(smallInt, { type: 'integer' }).optional().describe('fail the run unless the ioctl returns this (0 or -errno)'),
    })
    .describe('KVM_SET_MEMORY_ATTRIBUTES on [gpa, gpa + size): PRIVATE or 0'),
  z
    .strictObject({
      op: z.literal('punchHole'),
      gpa: hostGpa.describe('first GPA of the hole; its memslot must have a guest_memfd, whose file offset is gpa − the memslot\'s gpa'),
      size: u64.describe('bytes (fallocate len); the kernel wants offset and len page-aligned (else -EINVAL)'),
      mode: withJsonSchema(smallInt, { type: 'integer' })
        .optional()
        .describe('fallocate mode bits (FALLOC_FL_KEEP_SIZE 0x1, FALLOC_FL_PUNCH_HOLE 0x2); default 0x3. guest_memfd needs KEEP_SIZE and takes no other bit (-EOPNOTSUPP); 0x1 alone preallocates'),
      expectRet: withJsonSchema(smallInt, { type: 'integer' }).optional().describe('fail the run unless fallocate returns this (0 or -errno)'),
    })
    .describe("TD only: fallocate(PUNCH_HOLE|KEEP_SIZE) on the memslot's guest_memfd: zap the private mappings of the range (BLOCK/TRACK/REMOVE), drop its pages, end the invalidation"),
  z
    .strictObject({
      op: z.literal('truncate'),
      gpa: hostGpa.describe("any GPA of a memslot with a guest_memfd: the file to truncate"),
      length: u64.describe('the new file size'),
      expectRet: withJsonSchema(smallInt, { type: 'integer' }).optional().describe('fail the run unless ftruncate returns this (guest_memfd refuses every size change: -22, EINVAL)'),
    })
    .describe('TD only: ftruncate(2) on the memslot\'s guest_memfd'),
  z
    .strictObject({
      op: z.literal('preFaultMemory'),
      vcpu: vcpuIndex,
      gpa: u64.describe('struct kvm_pre_fault_memory.gpa (page-aligned; a GPA with the shared bit is -EINVAL)'),
      size: u64.describe('bytes to map (page-aligned, non-zero)'),
      flags: u64.optional().describe('must be 0 (else -EINVAL); default 0'),
      beforeFinalize: z
        .boolean()
        .optional()
        .describe('issue it during the build, after the image and before KVM_TDX_FINALIZE_VM (KVM refuses with -95, EOPNOTSUPP); otherwise after the vCPUs started, on a vCPU a waitExit holds in userspace'),
      expectRet: withJsonSchema(smallInt, { type: 'integer' }).optional().describe('fail the run unless the ioctl returns this (0 or -errno)'),
      expectSize: u64.optional().describe('fail the run unless this many bytes of the range are left unmapped (copied back to userspace)'),
    })
    .describe('TD only: KVM_PRE_FAULT_MEMORY on a vCPU fd: map the range through the fault path without running the guest (private GFNs by TDH.MEM.PAGE.AUG, PENDING until the guest accepts)'),
  z
    .strictObject({
      op: z.literal('setMemoryRegion'),
      slot: atLeast(0, 'a slot id of at least 0').describe("kvm_userspace_memory_region2.slot (as_id in bits 16 and up); the scenario's memslots have ids 0, 1, … in their order"),
      gpa: u64.describe('guest_phys_addr, without the shared bit'),
      size: u64.describe('memory_size in bytes; 0 deletes the slot'),
      flags: z
        .array(z.enum(MEMSLOT_FLAG_NAMES))
        .default([])
        .describe('kvm_userspace_memory_region2.flags by name'),
      guestMemfdOffset: u64.default(0n).describe('guest_memfd_offset (with KVM_MEM_GUEST_MEMFD)'),
      expectRet: withJsonSchema(smallInt, { type: 'integer' }).optional().describe('fail the run unless the ioctl returns this (0 or -errno, e.g. -22 EINVAL, -17 EEXIST)'),
    })
    .describe('KVM_SET_USER_MEMORY_REGION2: create, delete (size 0), move (a new gpa) or change the flags of a memslot, as KVM checks and runs it (kvm_set_memory_region)'),
]);
/** A step of a host thread (`hostThreads[i].program`): ioctls, or accesses through the VMM's mapping. */
const expectRet = withJsonSchema(smallInt, { type: 'integer' }).optional().describe('fail the run unless the ioctl returns this (0, the default, or -errno such as -5 EIO, -22 EINVAL)');
const threadStep = z.discriminatedUnion('op', [
  waitExitStep,
  runStep,
  z
    .strictObject({ op: z.literal('createVcpu'), vcpu: vcpuIndex, expectRet })
    .describe('KVM_CREATE_VCPU with this vCPU id, under kvm->lock; for a TD only between KVM_TDX_INIT_VM and KVM_TDX_FINALIZE_VM (-EIO otherwise); the vCPU is then not created by the default build'),
  z
    .strictObject({ op: z.literal('initVcpu'), vcpu: vcpuIndex, expectRet })
    .describe('KVM_TDX_INIT_VCPU (TDH.VP.CREATE, ADDCX, INIT) holding kvm->lock, every vCPU mutex and kvm->slots_lock; -EINVAL (-22) on a vCPU already initialised, -EBADF (-9) on one whose creation failed'),
  z
    .strictObject({ op: z.literal('setAttributes'), gpa, size: u64, to: z.enum(['shared', 'private']), expectRet })
    .describe('KVM_SET_MEMORY_ATTRIBUTES on [gpa, gpa + size) under kvm->slots_lock'),
  z
    .strictObject({
      op: z.literal('initMemRegion'),
      vcpu: vcpuIndex.default(0),
      page: atLeast(0, 'an image page').describe('the image page (index into image) to add; the build then does not add it'),
      gpa: u64.optional().describe("region.gpa; default the image page's GPA"),
      source: u64
        .optional()
        .describe("region.source_addr; default the VMM's staging copy of the page (0x140000000 + page * 0x1000, where the VMM maps one page per image page)"),
      nrPages: smallInt.default(1).describe('region.nr_pages'),
      measure: z.boolean().default(true).describe('KVM_TDX_MEASURE_MEMORY_REGION: TDH.MR.EXTEND each page'),
      flags: u64.optional().describe('kvm_tdx_cmd.flags as a number, overriding measure (any bit but KVM_TDX_MEASURE_MEMORY_REGION is -EINVAL)'),
      expectRet,
    })
    .describe(
      "KVM_TDX_INIT_MEM_REGION on the vCPU's fd holding kvm->lock, every vCPU mutex and kvm->slots_lock: TDH.MEM.PAGE.ADD (and TDH.MR.EXTEND) of an image page. -EINVAL (-22) before that vCPU's INIT_VCPU, once the TD is finalized, for a misaligned/zero source or GPA, no pages or a shared GPA; -EFAULT (-14) for a source the VMM has not mapped",
    ),
  z
    .strictObject({ op: z.literal('finalize'), expectRet })
    .describe(
      'KVM_TDX_FINALIZE_VM (TDH.MR.FINALIZE) holding kvm->lock, every vCPU mutex and kvm->slots_lock; in a thread started initialized it replaces the build\'s own FINALIZE (the vCPUs run once the thread is joined). -EINVAL (-22) once the TD is finalized',
    ),
  z.strictObject({ op: z.literal('write'), gpa: hostGpa, size: accessSize, value: u64 }).describe("a store through the VMM's mapping of guest memory (the shared backing)"),
  z
    .strictObject({ op: z.literal('read'), gpa: hostGpa, size: accessSize, expect: u64.optional().describe('fail the run if the value read differs') })
    .describe("a load through the VMM's mapping of guest memory (the shared backing)"),
  z
    .strictObject({ op: z.literal('waitMemory'), gpa: hostGpa, size: accessSize, value: u64 })
    .describe("read guest memory through the VMM's mapping again and again until it holds value; blocks this thread only"),
]);

/** A TDX status: a number, or a name such as "TDX_EPT_ENTRY_STATE_INCORRECT|RCX" (tdxsim's display form). */
const tdxStatus = withJsonSchema(
  z.union([z.bigint(), z.number().int(), z.string()]).transform((v, ctx) => {
    const code = typeof v === 'string' && !HEX_OR_DEC.test(v) ? tdxStatusCode(v) : BigInt(v);
    if (code === null || code < 0n || code >= 1n << 64n) {
      ctx.addIssue({ code: 'custom', message: `unknown TDX status ${JSON.stringify(v)}; write a number or a name such as "TDX_EPT_ENTRY_STATE_INCORRECT|RCX"` });
      return z.NEVER;
    }
    return code;
  }),
  { anyOf: [{ type: 'integer', minimum: 0 }, { type: 'string' }], description: 'a TDX status: a number or a name such as "TDX_SUCCESS" or "TDX_EPT_WALK_FAILED|RCX"' },
);

const seamcallStep = z
  .strictObject({
    seamcall: z.enum(PLAYGROUND_SEAMCALLS).describe('the leaf (the memory-management SEAMCALLs)'),
    rcx: u64.default(0n).describe('RCX: usually GPA | level (page_info)'),
    rdx: u64.optional().describe("RDX: the TDR; default: the scenario's TD (any other value is checked as the module checks a TDR operand)"),
    r8: u64.default(0n).describe('R8: the new page (AUG, PAGE.ADD, SEPT.ADD, DEMOTE, RELOCATE)'),
    r9: u64.default(0n).describe('R9: the source page (PAGE.ADD)'),
    expect: z
      .strictObject({ rax: tdxStatus.optional(), rcx: u64.optional(), rdx: u64.optional() })
      .optional()
      .describe('what the module must answer; a difference fails the run'),
  })
  .describe('one raw SEAMCALL');

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
        mapGpa: z
          .enum(['convert', 'fail'])
          .optional()
          .describe("a KVM_EXIT_HYPERCALL for MapGPA: convert (QEMU's default) or fail it with hypercall.ret = -EINVAL, which the guest sees as INVALID_OPERAND"),
        memoryFault: z
          .enum(['convert', 'stop'])
          .optional()
          .describe("a KVM_EXIT_MEMORY_FAULT: convert the page (QEMU's kvm_convert_memory, the default) or stop: the vCPU thread stays in userspace for good"),
        mmioReads: z.array(u64).optional().describe('what MMIO reads return, one value per KVM_EXIT_MMIO read in the order they reach the VMM; then the device models answer'),
        inReads: z
          .array(u64)
          .optional()
          .describe('what port INs return, one value per KVM_EXIT_IO IN the device models would answer, in the order they reach the VMM (cut to the access size); then the device models (ACPI PM, all ones) answer'),
        msi: z
          .array(
            z.strictObject({
              vcpu: atLeast(0, 'a vCPU index').describe('the destination vCPU (its x2APIC id)'),
              vector: interruptVector,
            }),
          )
          .default([])
          .describe("TD only: MSIs a device of the VMM raises with KVM_SIGNAL_MSI once the vCPUs run; each is posted to the vCPU's posted-interrupt descriptor whenever the schedule delivers it"),
        nmi: z
          .array(atLeast(0, 'a vCPU index'))
          .default([])
          .describe('TD only: vCPUs the VMM sends an NMI with KVM_NMI once they run; KVM writes PEND_NMI before the next entry'),
      })
      .default({ mapGpaExit: true, mapGpaEagain: 0, msi: [], nmi: [] })
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
    guestKernel: z
      .strictObject({
        directMap: z
          .array(z.strictObject({ gpa, size: u64, shared: z.boolean().default(false).describe('mapped with the shared bit (decrypted)') }))
          .default([])
          .describe('the guest page tables: PAGE_OFFSET + gpa maps gpa with PAGE_KERNEL, 4K PTEs'),
        unaccepted: z
          .strictObject({
            gpa: u64.describe('phys_base: the first byte the bitmap covers'),
            size: u64.describe('bytes of unaccepted memory from phys_base, all unaccepted at boot'),
            unitSize: u64.default(0x200000n).describe('bytes per bitmap bit (x86: PMD_SIZE, 2M; smaller keeps a search short)'),
          })
          .optional()
          .describe('the EFI unaccepted-memory table accept_memory consults'),
      })
      .optional()
      .describe("TD only: the guest kernel's memory data shared by its vCPUs (actor guest.kernel): page tables and the unaccepted-memory bitmap"),
    host: z
      .array(hostStep)
      .optional()
      .describe("the VMM's main thread after the build and KVM_RUN of every vCPU: wait for exits and check them, answer them, read and write shared memory, convert"),
    hostThreads: z
      .array(
        z.strictObject({
          start: z
            .enum(['initialized', 'runnable'])
            .default('initialized')
            .describe('initialized: started by the build right after KVM_TDX_INIT_VM, beside the image loading, and joined before KVM_TDX_FINALIZE_VM; runnable: started with the vCPU threads'),
          program: z.array(threadStep).min(1, 'a host thread needs at least one step').describe("the thread's syscalls, in order"),
        }),
      )
      .default([])
      .describe("TD only: more userspace threads of the VMM (vmm.threadN for hostThreads[N]), each with its own program; their steps interleave with the main thread's and the vCPUs', and their ioctls take KVM's mutexes (kvm->lock, vcpu->mutex, kvm->slots_lock) as separate steps"),
    vcpus: z
      .array(
        z.strictObject({
          program: z.array(guestOp).min(1, 'a vCPU needs at least one instruction').describe("the guest's instructions, in order"),
          veHandlerPrologue: z.array(prologueOp).default([]).describe('what the #VE handler runs before TDG.VP.VEINFO.GET (loads and stores)'),
          lapicTimer: z
            .strictObject({ vector: interruptVector })
            .optional()
            .describe("TD only: the guest's LAPIC timer, which KVM emulates, armed when the vCPU first runs (LOCAL_TIMER_VECTOR is 0xec); its expiry is a message the schedule delivers at any point (a logical clock, no real time), posted like an MSI"),
          privateVe: z
            .enum(['panic', 'accept'])
            .default('panic')
            .describe("the #VE handler's answer to an EPT-violation #VE on private memory: Linux panics; accept is a guest that accepts the 4K page and retries (§6.ii B.3)"),
        }),
      )
      .min(1, 'at least one vCPU')
      .describe('one entry per vCPU'),
    kthreads: z
      .array(
        z.strictObject({
          start: z
            .enum(['runnable', 'initialized'])
            .default('runnable')
            .describe('runnable: once the TD is built, beside the vCPUs; initialized: during the build, after the image and before KVM_TDX_FINALIZE_VM, which waits for the thread'),
          program: z.array(seamcallStep).min(1, 'a kthread needs at least one SEAMCALL'),
        }),
      )
      .default([])
      .describe('TD only: host-kernel test threads (host.kthreadN) that issue raw SEAMCALLs once the TD is built — the SEAMCALL playground'),
  })
  .describe('a tdxsim scenario: a VM, its memory and devices, and each vCPU\'s guest program (README "Scenarios")');

/** A scenario as written (before defaults and bigint conversion). */
export type ScenarioInput = z.input<typeof scenarioSchema>;
/** A validated scenario. */
export type Scenario = z.output<typeof scenarioSchema>;
