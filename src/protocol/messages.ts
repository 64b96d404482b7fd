/**
 * Every message the actors exchange, as one catalogue keyed by kind and architectural name.
 *
 * A message is what crosses a boundary in the real system: an ioctl, a SEAMCALL and its return (the TD
 * exit), a TDCALL, a VM entry or exit, an exception, a memory access the CPU performs, or an operation on
 * memory another actor owns (an SPTE cmpxchg, a walk of a page table, the #VE information area).
 * Names are the architectural ones, character for character, so logs are greppable across versions:
 * SEAMCALL/TDCALL leaves by leaf name, TDVMCALLs as `TDG.VP.VMCALL<sub-function>`, exits by exit reason.
 * 64-bit register values are bigint here and hex strings in the log.
 */

/** Stable actor names from the scenario, never XState session ids (ecosystem-notes §1.9). */
export type ActorId = string;

/** General-purpose registers exchanged on TD exit / TDH.VP.ENTER and TDCALL (§4.1, §4.3). */
export interface Gprs {
  RAX?: bigint;
  RCX?: bigint;
  RDX?: bigint;
  RBX?: bigint;
  RSI?: bigint;
  RDI?: bigint;
  R8?: bigint;
  R9?: bigint;
  R10?: bigint;
  R11?: bigint;
  R12?: bigint;
  R13?: bigint;
  R14?: bigint;
  R15?: bigint;
}

/** A guest instruction as the CPU sees it when it performs the access. */
export interface MemAccess {
  /** Guest RIP of the instruction (fault-like exits leave it unchanged). */
  rip: bigint;
  gla: bigint;
  gpa: bigint;
  size: number;
  /** Encoded instruction length (part of the instruction, like its destination register). */
  length: number;
  /** LOAD only: destination register. */
  reg?: string;
  /** STORE only. */
  value?: bigint;
}

/** Which EPT hierarchy a hardware walk uses (§1.2): shared EPT or S-EPT in a TD; the only EPT in VMX. */
export type EptKind = 'shared' | 'secure' | 'ept';

/** The TDP MMU root a KVM walk/cmpxchg targets (§1.4): the direct (shared) root or the mirror root. */
export type TdpRoot = 'direct' | 'mirror';

/** One step of a TDP walk: the SPTE the iterator read at that level (tdp_iter's old_spte). */
export interface WalkStep {
  pgLevel: number;
  /** Page-table page (host PFN) that holds this SPTE. */
  tablePfn: number;
  index: number;
  spte: bigint;
}

/**
 * For VMX exits only: what KVM would fetch and decode at RIP from guest memory. A VMX guest's memory and
 * registers are readable by KVM (x86_emulate_instruction); a TD's are not, so TD exits never carry this.
 */
export interface DecodedInsn {
  op: 'load' | 'store';
  size: number;
  length: number;
  reg: string;
  value?: bigint;
}

export interface MessageCatalog {
  /** Userspace VMM → KVM vCPU thread. */
  ioctl: {
    /**
     * KVM_RUN; `mmioData` is run->mmio.data written by the VMM when completing a KVM_EXIT_MMIO read;
     * `hypercallRet` is run->hypercall.ret when completing a KVM_EXIT_HYPERCALL (0 or -errno, §6.iv step 5).
     */
    KVM_RUN: {
      vcpu: number;
      mmioData: bigint | null;
      hypercallRet?: number;
      /** The bytes the VMM wrote at run->io.data_offset to complete a KVM_EXIT_IO IN (tdx_complete_pio_in). */
      ioData?: bigint;
      /** run->tdx written by the VMM to complete a KVM_EXIT_TDX: the status for R10 and, for GetTdVmCallInfo, R11–R14. */
      tdx?: TdxExitReply;
    };
    /**
     * KVM_SIGNAL_MSI on the VM fd: a device of the VMM raises an MSI (struct kvm_msi). `address_lo` is
     * 0xfee00000 | destination APIC id << 12, `data` the vector (fixed delivery, edge). The model sends it
     * to the destination vCPU's actor, which runs the ioctl's delivery (kvm_apic_set_irq → the TD's
     * posted-interrupt path) on the VMM thread's behalf; `vcpu` names that destination.
     */
    KVM_SIGNAL_MSI: { vcpu: number; address_lo: number; address_hi: number; data: number; flags: number };
    /** KVM_NMI on the vCPU fd: queue an NMI for the vCPU (kvm_inject_nmi: KVM_REQ_NMI and a kick). */
    KVM_NMI: { vcpu: number };
    /** KVM_MEMORY_ENCRYPT_OP(KVM_TDX_INIT_VM) on the VM fd (§5b.3 step 2). */
    KVM_TDX_INIT_VM: { attributes: bigint };
    /** KVM_MEMORY_ENCRYPT_OP(KVM_TDX_INIT_VCPU) on a vCPU fd (§5b.3 step 3). */
    KVM_TDX_INIT_VCPU: { vcpu: number };
    /** KVM_MEMORY_ENCRYPT_OP(KVM_TDX_INIT_MEM_REGION) on a vCPU fd: copy `nr_pages` from `source_addr` (§5b.3 step 4). */
    KVM_TDX_INIT_MEM_REGION: { vcpu: number; source_addr: bigint; gpa: bigint; nr_pages: number; flags: number };
    /** KVM_MEMORY_ENCRYPT_OP(KVM_TDX_FINALIZE_VM) (§5b.3 step 5). */
    KVM_TDX_FINALIZE_VM: Record<string, never>;
    /** KVM_SET_MEMORY_ATTRIBUTES: [address, address + size) gets `attributes` (PRIVATE = 1 << 3, §1.4). */
    KVM_SET_MEMORY_ATTRIBUTES: { address: bigint; size: bigint; attributes: bigint };
    /** KVM_CREATE_VCPU on the VM fd with the vCPU id (kvm_vm_ioctl_create_vcpu). */
    KVM_CREATE_VCPU: { vcpu: number };
    /**
     * KVM_PRE_FAULT_MEMORY on a vCPU fd (struct kvm_pre_fault_memory): map [gpa, gpa + size) as a fault
     * would, without running the guest (machines/kvm/preFaultMemory.ts).
     */
    KVM_PRE_FAULT_MEMORY: { vcpu: number; gpa: bigint; size: bigint; flags: bigint };
    /** KVM_SET_USER_MEMORY_REGION2 on the VM fd (struct kvm_userspace_memory_region2; memory_size 0 deletes). */
    KVM_SET_USER_MEMORY_REGION2: { slot: number; flags: number; guest_phys_addr: bigint; memory_size: bigint; guest_memfd_offset: bigint };
  };
  /** KVM → userspace VMM: an ioctl that returns to userspace with a value (0 or -errno). */
  'ioctl-return': {
    KVM_TDX_INIT_VM: { ret: number };
    KVM_TDX_INIT_VCPU: { vcpu: number; ret: number };
    KVM_TDX_INIT_MEM_REGION: { vcpu: number; ret: number };
    KVM_TDX_FINALIZE_VM: { ret: number };
    KVM_SET_MEMORY_ATTRIBUTES: { ret: number };
    /** The new vCPU fd's number in the real ABI; the model answers 0 or -errno. */
    KVM_CREATE_VCPU: { vcpu: number; ret: number };
    /** 0 if at least one page was mapped, else the first error; `gpa`/`size`: what is left of the range (copied back to userspace). */
    KVM_PRE_FAULT_MEMORY: { vcpu: number; ret: number; gpa: bigint; size: bigint };
    KVM_SET_USER_MEMORY_REGION2: { ret: number };
    /** > 0: the interrupt was delivered to that many vCPUs (kvm_set_msi), 0: blocked. */
    KVM_SIGNAL_MSI: { vcpu: number; ret: number };
    KVM_NMI: { vcpu: number; ret: number };
  };
  /** KVM vCPU thread → userspace VMM (return from KVM_RUN with run->exit_reason, §4.12). */
  'kvm-exit': {
    KVM_EXIT_MMIO: { vcpu: number; exit_reason: number; phys_addr: bigint; len: number; is_write: number; data: bigint };
    /** The fault's private/shared-ness disagrees with the attribute, or there is no guest_memfd page (§6.ii A.4). */
    KVM_EXIT_MEMORY_FAULT: { vcpu: number; exit_reason: number; gpa: bigint; size: bigint; flags: number };
    /** run->hypercall for KVM_HC_MAP_GPA_RANGE: args = [GPA without shared bit, 4K pages, attributes] (§6.iv step 3). */
    KVM_EXIT_HYPERCALL: { vcpu: number; exit_reason: number; nr: number; args: [bigint, bigint, bigint]; flags: number; ret: number };
    /** run->io: port I/O no in-kernel device claimed; `data` is what sits at data_offset for an OUT (§4.3 Instruction.IO). */
    KVM_EXIT_IO: { vcpu: number; exit_reason: number; direction: number; size: number; port: number; count: number; data_offset: number; data: bigint };
    /**
     * run->system_event; for TDG.VP.VMCALL<ReportFatalError> type KVM_SYSTEM_EVENT_TDX_FATAL (7) and ndata 16:
     * the guest's 16 GPRs in VCPU_REGS order (RAX = TDH.VP.ENTER's return, RSP/RBP 0) (tdx_report_fatal_error).
     */
    KVM_EXIT_SYSTEM_EVENT: { vcpu: number; exit_reason: number; type: number; ndata: number; data: bigint[] };
    /**
     * run->tdx: a TDVMCALL KVM hands to userspace (GetQuote, GetTdVmCallInfo leaf 1). `nr` is the sub-function;
     * the output fields arrive pre-filled with what the guest gets if userspace leaves them alone.
     */
    KVM_EXIT_TDX: { vcpu: number; exit_reason: number; flags: number; nr: number; get_tdvmcall_info?: { leaf: bigint } & TdxExitReply; get_quote?: { ret: bigint; gpa: bigint; size: bigint } };
    /** KVM_RUN returned -EINTR: a signal was pending before the next entry. */
    KVM_EXIT_INTR: { vcpu: number; exit_reason: number; ret: number };
  };
  /**
   * Userspace VMM ↔ a playground kthread (host.kthreadN): start issuing its SEAMCALLs. The model's stand-in
   * for however userspace triggers a test module (a debugfs write); sent once the TD is built, or during
   * the build before KVM_TDX_FINALIZE_VM, which then waits for the thread's KTHREAD_DONE.
   */
  kthread: {
    KTHREAD_START: { thread: number };
    /** A thread started during the build has made its last call: the VMM goes on (KVM_TDX_FINALIZE_VM). */
    KTHREAD_DONE: { thread: number };
  };
  /**
   * A thread ↔ KVM's sleeping locks (machines/kvm/kvmLocks.ts): mutex_lock (answered when the caller holds
   * it) and mutex_unlock, by the lock's kernel name (`kvm->lock`, `kvm->slots_lock`, `vcpu1->mutex`).
   */
  mutex: {
    MUTEX_LOCK: { lock: string };
    MUTEX_ACQUIRED: { lock: string };
    MUTEX_UNLOCK: { lock: string };
    MUTEX_UNLOCKED: { lock: string };
  };
  /** The VMM's main thread ↔ one of its host threads (vmm.threadN): pthread_create and the thread's end (pthread_join). */
  thread: {
    THREAD_START: { thread: number };
    THREAD_EXIT: { thread: number };
  };
  /** Userspace VMM → a vCPU thread: QEMU's qemu_cpu_kick (pthread_kill with SIG_IPI) to stop it for a pause. */
  signal: {
    SIG_IPI: { vcpu: number };
  };
  /**
   * The last reference to a KVM file goes away (the VMM closes it or exits): the anon-inode names of the
   * VM, a vCPU and a guest_memfd. Closing guest_memfd invalidates all its pages; the last reference to
   * the VM destroys it (§5b.4).
   */
  close: {
    'kvm-vm': Record<string, never>;
    'kvm-vcpu': { vcpu: number };
    'kvm-gmem': { slot: number };
  };
  /**
   * Userspace VMM → a guest_memfd (kvm.vm runs it): fallocate(2) and ftruncate(2) on the file bound to
   * memslot `slot` (machines/kvm/guestMemfd.ts). `mode` holds FALLOC_FL_* bits.
   */
  syscall: {
    fallocate: { slot: number; mode: number; offset: bigint; len: bigint };
    ftruncate: { slot: number; length: bigint };
  };
  /** The syscall's return: 0 or -errno. */
  'syscall-return': {
    fallocate: { ret: number };
    ftruncate: { ret: number };
  };
  /** KVM → userspace VMM: close(2) returns once the file's release (and, for the last reference, the VM's destruction) ran. */
  'close-return': {
    'kvm-vm': { ret: number };
    'kvm-vcpu': { ret: number };
    'kvm-gmem': { ret: number };
  };
  /** Inside KVM: the VM teardown asks each vCPU's CPU / vCPU object to do its part (§5b.4 steps 2–3). */
  'kvm-call': {
    /** smp_call_function_single(vcpu->cpu, tdx_flush_vp): TDH.VP.FLUSH on the LP the vCPU is associated with. */
    tdx_flush_vp: { vcpu: number };
    /** kvm_destroy_vcpus → tdx_vcpu_free: reclaim the TDCX pages and the TDVPR. */
    tdx_vcpu_free: { vcpu: number };
    /**
     * The hrtimer callback of the vCPU's emulated LAPIC timer (apic_timer_fn → kvm_apic_local_deliver):
     * the timer's expiry on the runtime's logical clock, a message the schedule delivers like any other.
     */
    apic_timer_fn: { vcpu: number };
    /**
     * KVM_PRE_FAULT_MEMORY's read of kvm->arch.pre_fault_allowed, which tdx_td_finalize sets once the TD
     * is RUNNABLE (a plain load on the vCPU thread; kvm.vm answers it in any state).
     */
    pre_fault_allowed: { vcpu: number };
    /**
     * kvm_apic_send_ipi on behalf of another vCPU's thread (its x2APIC ICR write, tdvmcall.ts): `vcpu` is the
     * destination, `source` the sender, `icr` the 64-bit value written; the sender's thread runs
     * __vmx_deliver_posted_interrupt on the destination's descriptor (postedInterrupt.ts).
     */
    kvm_apic_send_ipi: { vcpu: number; source: number; icr: bigint; vector: number };
    /**
     * kvm_vcpu_halt's poll loop finds its time up (kvm_vcpu_can_poll false: vcpu->halt_poll_ns have passed):
     * the end of poll window `window` on the logical clock, a message the schedule delivers at any point.
     */
    kvm_vcpu_can_poll: { vcpu: number; window: number };
  };
  'kvm-call-return': {
    /** The destination's descriptor holds the vector (and the notification or wake-up went out): the sender's WRMSR completes. */
    kvm_apic_send_ipi: { vcpu: number; source: number };
    tdx_flush_vp: { vcpu: number; err: bigint };
    tdx_vcpu_free: { vcpu: number; err: bigint };
    pre_fault_allowed: { vcpu: number; allowed: boolean };
  };
  /**
   * kvm_make_all_cpus_request (§7.4): the requester sets the request on each vCPU and reads its mode; a
   * vCPU in guest mode gets an IPI and the requester waits until the IPI's handler has run on that CPU.
   */
  'kvm-request': {
    /**
     * NO_ACTION | WAIT | NO_WAKEUP: only forces the vCPU out of guest mode. `waitForSeptZap`: the requester
     * is tdh_do_no_vcpus, which set kvm_tdx->wait_for_sept_zap first, so the thread will not enter the TD
     * again until SEPT_ZAP_DONE (§5c.1 step 3, §7.3).
     */
    KVM_REQ_OUTSIDE_GUEST_MODE: { vcpu: number; waitForSeptZap?: true };
    /**
     * tdh_do_no_vcpus cleared wait_for_sept_zap after its retry. In KVM the vCPU thread re-reads the flag
     * each time round its run loop; the model tells it instead, which allows the same entries.
     */
    SEPT_ZAP_DONE: { vcpu: number };
    /** kvm_flush_remote_tlbs after zapping shared SPTEs: the vCPU flushes before its next entry. */
    KVM_REQ_TLB_FLUSH: { vcpu: number };
    /** The vCPU was outside guest mode, or the IPI's handler ran on its CPU: the requester stops waiting for it. */
    KVM_REQ_ACK: { vcpu: number };
  };
  /**
   * kvm->srcu's grace period (srcu.ts): synchronize_srcu in a memslot update asks each vCPU thread, which
   * reports SRCU_QUIESCENT once it is outside its read-side section.
   */
  srcu: {
    SYNCHRONIZE_SRCU: { vcpu: number };
    SRCU_QUIESCENT: { vcpu: number };
  };
  /** Host interrupts at the logical processor that runs a vCPU (hw.cpu). */
  interrupt: {
    /**
     * The requester's IPI to the CPU of a vCPU in guest mode: a VM exit at the guest's next instruction
     * boundary. `requester` null: a reschedule IPI from a signal (kick_process); nobody waits for its
     * handler. `vector`: the host IDT vector the IPI arrives on, which the exit reports.
     */
    IPI: { vcpu: number; requester: ActorId | null; vector: number };
    /** After the TD exit the vCPU thread enables interrupts and the pending IPI's handler runs on this CPU. */
    LOCAL_IRQ_ENABLE: { vcpu: number };
    IRQ_HANDLED: { vcpu: number };
    /**
     * Virtual-interrupt delivery (SDM 30.2.2) at the guest's instruction boundary: RFLAGS.IF was 1 and RVI's
     * priority class above the virtual PPR; the vector moved from vIRR to ISR and IF is now 0. The
     * instruction at `rip` has not run: it runs after the handler's IRET.
     */
    VIRTUAL_INTERRUPT: { vcpu: number; vector: number; rip: bigint };
    /**
     * TDX module → CPU: the host set PEND_NMI (TDH.VP.WR of TDVPS management field 11). The CPU delivers
     * the virtual NMI at a boundary where VE_INFO is free and no NMI is being handled (§5a.6).
     */
    PEND_NMI: { vcpu: number };
    /** CPU → guest: NMI (vector 2) instead of the instruction at `rip`, which runs after the handler's IRET. */
    NMI: { vcpu: number; vector: number; rip: bigint };
  };
  /**
   * The posted-interrupt descriptor (vcpu_tdx's pi_desc: PIR bits 255:0, ON bit 256), which KVM owns in
   * memory (kvm.vcpuN) and the CPU processes: on the notification vector in guest mode the CPU clears
   * ON and takes PIR into vIRR atomically (SDM 30.6, posted-interrupt processing).
   */
  'posted-interrupt': {
    /** hw.cpu → kvm.vcpu: clear ON, read and clear PIR (one locked exchange of the descriptor). */
    PIR_XCHG: { vcpu: number };
    /** kvm.vcpu → hw.cpu: the 256 PIR bits the exchange took, bit N = vector N. */
    PIR: { vcpu: number; pir: bigint };
  };
  /**
   * TDX module ↔ CPU: the guest-interrupt status (RVI, SVI of the TD VMCS) and the virtual-APIC page's
   * vIRR, which the CPU updates while the TD runs; the module reads them for TDH.VP.RD of
   * TD_VCPU_STATE_DETAILS_NON_ARCH (VMXIP), as it reads VE_INFO through ve-info.
   */
  'guest-interrupt-status': {
    GUEST_INTERRUPT_STATUS_GET: { vcpu: number };
    GUEST_INTERRUPT_STATUS: { vcpu: number; rvi: number; svi: number; virr: bigint };
  };
  /** KVM → TDX module (§4.1). */
  seamcall: {
    'TDH.VP.ENTER': Gprs & { vcpu: number };
  } & { [N in HostSeamcall]: Gprs & { tdParams?: TdParams } };
  /** TDX module → KVM: the return of a SEAMCALL other than TDH.VP.ENTER; RAX = status (§4.7). */
  'seamcall-return': { [N in HostSeamcall]: Gprs };
  /** TDX module → KVM: the return of TDH.VP.ENTER, RAX = status | exit reason (§5c.2 step 7). */
  'td-exit': {
    EPT_VIOLATION: Gprs & { vcpu: number };
    EPT_MISCONFIG: Gprs & { vcpu: number };
    TDCALL: Gprs & { vcpu: number };
    /** An interrupt for the host arrived while the TD ran (§5c.3): asynchronous, the guest's RIP is unchanged. */
    EXTERNAL_INTERRUPT: Gprs & { vcpu: number };
    /**
     * TDH.VP.ENTER refused before entering: RAX = TDX_OPERAND_BUSY | SEPT_TREE or TD_EPOCH. No TD exit
     * happened (KVM's exit_reason is −1); KVM's fastpath leaves with interrupts on and re-enters (§5c.1 step 5, §7.3).
     */
    BUSY: Gprs & { vcpu: number };
  };
  /**
   * The TDX module continuing a SEAMCALL on the caller's LP (tdx → tdx). The module runs on every LP at
   * once; where it holds a try-lock while other LPs can act (§7.2), the call is split at that point, so a
   * SEAMCALL from another LP can be delivered in between and find the lock taken.
   */
  'seam-step': {
    /** TDH.VP.ENTER after counting the vCPU into the TD epoch under epoch_lock shared (§5c.2 step 3). */
    ENTER_EPOCH: { vcpu: number };
    /** TDH.VP.ENTER's zero-step filter (§7.5), run holding the S-EPT tree lock exclusively. */
    STEPPING_FILTER: { vcpu: number };
    /** TDH.MEM.TRACK advancing the epoch under epoch_lock exclusive (§7.4); `caller` gets the return. */
    TRACK_EPOCH: { caller: string };
  };
  /** Hardware VM exit: to the TDX module for a TD, to KVM for a VMX guest. */
  'vm-exit': {
    EPT_VIOLATION: { vcpu: number; exitReason: number; exitQualification: bigint; gpa: bigint; gla: bigint; rip: bigint; insn: DecodedInsn | null };
    EPT_MISCONFIG: { vcpu: number; exitReason: number; gpa: bigint; rip: bigint; insn: DecodedInsn | null };
    HLT: { vcpu: number; exitReason: number; rip: bigint; insnLength: number };
    /** `interruptionInfo`: the VM-exit interruption information (valid bit 31, type 10:8, vector 7:0). */
    EXTERNAL_INTERRUPT: { vcpu: number; exitReason: number; rip: bigint; interruptionInfo: number };
    /** IN/OUT: a TD's becomes a #VE (§5c.3); trap-free, RIP still at the instruction. */
    IO_INSTRUCTION: { vcpu: number; exitReason: number; exitQualification: bigint; rip: bigint; insnLength: number };
    /** WRMSR of an MSR the TD's MSR bitmap intercepts (the x2APIC ICR): the module turns it into a #VE (§5c.3). */
    MSR_WRITE: { vcpu: number; exitReason: number; rip: bigint; insnLength: number };
  };
  /** VM entry into the guest: by the TDX module for a TD, by KVM for a VMX guest. */
  'vm-entry': {
    VMLAUNCH: VmEntryPayload;
    VMRESUME: VmEntryPayload;
  };
  /** The guest's instruction stream as performed by the CPU. */
  insn: {
    /** The access completed (CPU → guest): a load's value, zero-extended to 64 bits. */
    RETIRE: { vcpu: number; rip: bigint; value: bigint | null };
    LOAD: MemAccess & { vcpu: number };
    STORE: MemAccess & { vcpu: number };
    HLT: { vcpu: number; rip: bigint };
    /** The guest's program has ended: it spins on `jmp .` at `rip`, where only an interrupt stops it. */
    SPIN: { vcpu: number; rip: bigint };
    /** `out dx, al/ax/eax`: port I/O, which a TD cannot do natively (§5c.3). */
    OUT: { vcpu: number; rip: bigint; port: number; size: 1 | 2 | 4; value: bigint; length: number };
    /** RFLAGS.IF = 1; interrupts are recognised from the boundary after the next instruction (the STI shadow). */
    STI: { vcpu: number; rip: bigint };
    /** RFLAGS.IF = 0. */
    CLI: { vcpu: number; rip: bigint };
    /** WRMSR IA32_X2APIC_EOI (0x80b), virtualized for a TD (EOI virtualization): the ISR's highest bit goes. */
    EOI: { vcpu: number; rip: bigint };
    /** The interrupt handler's IRET: RFLAGS (IF = 1) back from the stack; the interrupted instruction runs next. */
    IRET: { vcpu: number; rip: bigint };
    /** `in al/ax/eax, dx`: the same #VE in a TD, with the direction bit of the exit qualification set. */
    IN: { vcpu: number; rip: bigint; port: number; size: 1 | 2 | 4; length: number };
    /** WRMSR ECX = `msr`, EDX:EAX = `value` (0F 30); the x2APIC ICR (0x830) is not virtualized for a TD: a #VE. */
    WRMSR: { vcpu: number; rip: bigint; msr: number; value: bigint; length: number };
  };
  /** Hardware walking a page table owned by another actor (KVM's TDP MMU, or the TDX module's S-EPT). */
  'ept-walk': {
    EPT_WALK: { vcpu: number; ept: EptKind; gpa: bigint };
    /** `keyid`: the KeyID the CPU uses for a translated access (the TD's HKID for the S-EPT, 0 otherwise). */
    EPT_WALK_RESULT: { vcpu: number; ept: EptKind; gpa: bigint; path: WalkStep[]; keyid: number };
  };
  /**
   * INVEPT on a vCPU's logical processor (SDM Vol. 3C 30.3): `type` 1 (single-context) invalidates the
   * translations tagged with `eptp`, 2 (all-context) every EPT-derived translation. The TDX module's flush
   * at TDH.VP.ENTER (§5c.2 step 3) is followed on that LP by the VM entry, which the CPU performs next
   * (`then`); KVM's global flush of KVM_REQ_TLB_FLUSH (§1.2) returns to the vCPU thread.
   */
  tlb: {
    INVEPT: { vcpu: number; type: number; eptp: bigint | null; then: VmEntryForward | null };
  };
  'tlb-return': {
    INVEPT: { vcpu: number };
  };
  /** Exceptions delivered to the guest (§4.6). */
  exception: {
    '#VE': { vcpu: number; vector: number };
    '#DF': { vcpu: number; vector: number };
  };
  /**
   * TDCALL (§4.2, §4.3): the guest executes it on its CPU (guest → hw.cpu), which exits to the TDX module
   * with it (hw.cpu → tdx) unless an interrupt is pending at that instruction boundary. `rip`: the TDCALL's
   * address — where an interrupt taken at that boundary, or an ACCEPT's fault-like exit, leaves the guest
   * (the zero-step count, §7.5); inside the #VE handler, the handler's own instruction.
   */
  tdcall: {
    'TDG.VP.VEINFO.GET': Gprs & { vcpu: number; rip: bigint };
    'TDG.MEM.PAGE.ACCEPT': Gprs & { vcpu: number; rip: bigint };
    'TDG.VP.VMCALL<#VE.RequestMMIO>': Gprs & { vcpu: number; rip: bigint };
    'TDG.VP.VMCALL<Instruction.HLT>': Gprs & { vcpu: number; rip: bigint };
    /** R12 = start GPA (with the shared bit for private → shared), R13 = size (§6.iv step 1). */
    'TDG.VP.VMCALL<MapGPA>': Gprs & { vcpu: number; rip: bigint };
    /** R12 size, R13 direction (1 = out), R14 port, R15 value (§4.3). */
    'TDG.VP.VMCALL<Instruction.IO>': Gprs & { vcpu: number; rip: bigint };
    /** R12 MSR index, R13 the value (EDX:EAX) (§4.3; Linux's handle_wrmsr from the #VE handler). */
    'TDG.VP.VMCALL<Instruction.WRMSR>': Gprs & { vcpu: number; rip: bigint };
    /** R12 error code, R13 GPA of an optional information page (GHCI); KVM hands the GPRs to userspace. */
    'TDG.VP.VMCALL<ReportFatalError>': Gprs & { vcpu: number; rip: bigint };
    /** R12 leaf: 0 answered by KVM, 1 by userspace (KVM_EXIT_TDX); R11–R14 come back. */
    'TDG.VP.VMCALL<GetTdVmCallInfo>': Gprs & { vcpu: number; rip: bigint };
    /** R12 shared GPA of the quote buffer, R13 its size; KVM hands it to userspace (KVM_EXIT_TDX). */
    'TDG.VP.VMCALL<GetQuote>': Gprs & { vcpu: number; rip: bigint };
    'TDG.VP.VMCALL<SetupEventNotifyInterrupt>': Gprs & { vcpu: number; rip: bigint };
    /** A TDVMCALL whose R11 names no GHCI sub-function: shown by its leaf name alone. */
    'TDG.VP.VMCALL': Gprs & { vcpu: number; rip: bigint };
    /** TDG.VP.INFO (leaf 1): answered by the module without a TD exit. */
    'TDG.VP.INFO': Gprs & { vcpu: number; rip: bigint };
  };
  /** TDX module → guest: a TDCALL that completes inside the module (no TD exit). */
  'tdcall-return': {
    'TDG.VP.VEINFO.GET': Gprs & { vcpu: number };
    'TDG.MEM.PAGE.ACCEPT': Gprs & { vcpu: number };
    /** RCX GPAW, RDX ATTRIBUTES, R8 NUM_VCPUS | MAX_VCPUS << 32, R9 VCPU_INDEX, R10 TDG.SYS.RD available (bit 0), R11 0. */
    'TDG.VP.INFO': Gprs & { vcpu: number };
  };
  /** TDX module ↔ CPU: the #VE information area of a TDVPS, which the CPU writes on #VE delivery (§1.2). */
  've-info': {
    VE_INFO_GET: { vcpu: number };
    /**
     * The module injects a #VE in software (§5a.6): VE_INFO is written and #VE delivered if its valid
     * word is 0, otherwise #DF. Sent to the CPU because that actor owns the VE information area.
     */
    VE_INJECT: { vcpu: number; exitReason: number; exitQualification: bigint; gla: bigint; gpa: bigint; instrLength: number };
    /** `instrLength`: saved for instruction #VEs, 0 for EPT violations (§4.2 VEINFO.GET R10). */
    VE_INFO: { vcpu: number; valid: number; exitReason: number; exitQualification: bigint; gla: bigint; gpa: bigint; eptpIndex: number; instrLength: number };
  };
  /**
   * Physical memory with MKTME/TDX KeyIDs (hw.mem). `tag` is echoed in the reply so a caller with several
   * requests in flight (the TDX module serving several LPs) can match them.
   */
  mem: {
    MEM_READ: { pa: bigint; size: number; keyid: number; tag: string };
    MEM_WRITE: { pa: bigint; size: number; keyid: number; value: bigint; tag: string };
    /** Fill `bytes` from `pa` with zeroes (ACCEPT's clearing with the TD key, KVM's MOVDIR64B clear). */
    MEM_ZERO: { pa: bigint; bytes: bigint; keyid: number; tag: string };
    /** Copy a page, re-encrypting from `srcKeyid` to `dstKeyid` (TDH.MEM.PAGE.ADD). */
    MEM_COPY: { src: bigint; srcKeyid: number; dst: bigint; dstKeyid: number; bytes: bigint; tag: string };
    /** Read `bytes` from `pa` for a measurement: the reply is their SHA-384 (TDH.MR.EXTEND). */
    MEM_HASH: { pa: bigint; bytes: bigint; keyid: number; tag: string };
    /** `integrity`: false when the KeyID does not match the one the line was written with (§ model note in hw/memory.ts). */
    MEM_DATA: { pa: bigint; value: bigint; integrity: boolean; tag: string };
    MEM_DONE: { tag: string };
    MEM_DIGEST: { digest: string; tag: string };
  };
  /**
   * Guest vCPU ↔ the guest kernel's memory-management data (guest.kernel): its page tables and the
   * unaccepted-memory bitmap with its accepting_list under unaccepted_memory_lock (§6.ii, §6.iv). One
   * message is one atomic access or one critical section of that lock.
   */
  'guest-mm': {
    /** The CPU's walk of the guest page tables (CR3) for a virtual address: the leaf PTE, or null when not present. */
    GUEST_PT_WALK: { vcpu: number; va: bigint };
    GUEST_PT_WALK_RESULT: { vcpu: number; va: bigint; pte: bigint | null };
    /** set_pte of a direct-map PTE by __change_page_attr (set_memory_encrypted/decrypted). */
    GUEST_PTE_WRITE: { vcpu: number; va: bigint; pte: bigint };
    GUEST_PTE_WRITTEN: { vcpu: number; va: bigint };
    /**
     * accept_memory(start, end)'s first critical section: spin_lock_irqsave(&unaccepted_memory_lock), the
     * accepting_list check (a collision drops the lock and tries again: the reply waits), list_add, the first
     * set run of the bitmap in the range, spin_unlock with interrupts kept off.
     */
    ACCEPT_MEMORY_BEGIN: { vcpu: number; start: bigint; end: bigint };
    /** After arch_accept_memory(physStart, physEnd): spin_lock, bitmap_clear of the run, the next set run. */
    ACCEPT_MEMORY_CLEAR: { vcpu: number; physStart: bigint; physEnd: bigint };
    /** The next run of unaccepted units to accept (lock dropped, interrupts still off); null: none left, list_del and spin_unlock_irqrestore done. */
    ACCEPT_MEMORY_RANGE: { vcpu: number; physStart: bigint | null; physEnd: bigint | null };
  };
  /** KVM vCPU thread ↔ TDP MMU (kvm->mmu_lock and the SPTEs it protects, §7.1, §7.6). */
  mmu: {
    /**
     * kvm_mmu_faultin_pfn: the GFN's memory attribute (lockless xarray read), and its backing: a
     * guest_memfd page for a private fault, the userspace page for a shared one (§6.ii A.4).
     */
    FAULTIN: { vcpu: number; gfn: bigint; isPrivate: boolean };
    /** `slot` 'invalid': the GFN's memslot is being deleted or moved (KVM_MEMSLOT_INVALID). */
    FAULTIN_RESULT: { vcpu: number; gfn: bigint; attrPrivate: boolean; slot: 'none' | 'normal' | 'gmem' | 'invalid'; pfn: bigint | null; maxLevel: number };
    /**
     * kvm_swap_active_memslots: the updater (holding slots_lock) publishes a new memslot set with
     * rcu_assign_pointer; faults read it from then on. `generation` is kvm->memslots' generation.
     */
    MEMSLOTS_SWAP: { vcpu: number; memslots: PublishedMemslot[]; generation: number };
    MEMSLOTS_SWAPPED: { vcpu: number };
    /**
     * kvm_mmu_faultin_pfn's snapshot of kvm->mmu_invalidate_seq (fault->mmu_seq), a step of its own so that
     * an attribute change can land between it and the attribute read (§6.ii A.4–A.5).
     */
    MMU_INVALIDATE_SEQ_READ: { vcpu: number };
    MMU_INVALIDATE_SEQ: { vcpu: number; mmuSeq: number };
    /** A plain write of an SPTE the writer owns: the frozen SPTE's final value, or any SPTE under write mmu_lock (§7.6). */
    /** `externalPfn`: the S-EPT page TDH.MEM.SEPT.ADD linked for a new mirror page table (sp->external_spt). */
    SPTE_WRITE: { vcpu: number; root: TdpRoot; gfn: bigint; pgLevel: number; tablePfn: number; index: number; oldSpte: bigint; newSpte: bigint; childPfn: number | null; externalPfn?: number };
    /**
     * The direct root's zap under write mmu_lock (vcpu -1) is stored before the remote TLB flush that
     * follows it: hardware walks of other CPUs see the store once this is back.
     */
    SPTE_WRITTEN: { vcpu: number };
    /**
     * The attribute xarray store of KVM_SET_MEMORY_ATTRIBUTES, done between its two mmu_lock sections and
     * without the lock (kvm_vm_set_mem_attributes, §6.iv step 4).
     */
    SET_ATTRIBUTES: { vcpu: number; gfnStart: bigint; gfnEnd: bigint; private: boolean };
    SET_ATTRIBUTES_DONE: { vcpu: number };
    /**
     * kvm_mmu_invalidate_begin and kvm_mmu_invalidate_range_add for [gfnStart, gfnEnd), then
     * tdp_mmu_zap_leafs' iteration, all under write mmu_lock: the present leaf SPTEs of `root` in the
     * range. Nothing else can change them while the lock is held for write, so one read lists them all.
     */
    TDP_LEAF_SCAN: { vcpu: number; root: TdpRoot; gfnStart: bigint; gfnEnd: bigint; invalidate?: false };
    /**
     * kvm_mmu_invalidate_end under write mmu_lock (the post-set section of KVM_SET_MEMORY_ATTRIBUTES,
     * kvm_gmem_invalidate_end): mmu_invalidate_seq++, one invalidation fewer in progress.
     */
    MMU_INVALIDATE_END: { vcpu: number };
    TDP_LEAF_SCAN_RESULT: { vcpu: number; root: TdpRoot; leaves: (WalkStep & { gfn: bigint })[] };
    /** hugepage_test_guest_inhibit: a lockless read of lpage_info for the range of `gfn` at `pgLevel`. */
    LPAGE_INFO_READ: { vcpu: number; gfn: bigint; pgLevel: number };
    LPAGE_INFO: { vcpu: number; gfn: bigint; pgLevel: number; guestInhibit: boolean };
    /** hugepage_set_guest_inhibit under write mmu_lock: one-way, there is no clear (§6.iii step 7). */
    LPAGE_GUEST_INHIBIT: { vcpu: number; gfn: bigint; pgLevel: number };
    /**
     * tdp_mmu_split_huge_page under write mmu_lock: a page of 512 leaves one level down (the first is
     * `childSpte`, each next maps the next page) is linked in place of the huge leaf.
     */
    SPLIT_HUGE_PAGE: { vcpu: number; root: TdpRoot; gfn: bigint; pgLevel: number; tablePfn: number; index: number; oldSpte: bigint; newSpte: bigint; childPfn: number; childSpte: bigint; externalPfn?: number };
    /**
     * The MMU teardown of a dying VM (kvm_mmu_uninit_tdp_mmu after the roots are put): every page-table
     * page of both roots is freed; the reply lists the mirror pages' external (S-EPT) pages children
     * first, the order handle_removed_pt frees them in, and counts mirror leaves still present (§5b.4 4).
     */
    TDP_FREE_ROOTS: { vcpu: number };
    /**
     * truncate_inode_pages_range on a guest_memfd after a hole punch: the file's pages for
     * [gfnStart, gfnEnd) go back to the allocator, and a later private fault gets a new one (guestMemfd.ts).
     */
    GMEM_TRUNCATE_RANGE: { vcpu: number; gfnStart: bigint; gfnEnd: bigint };
    GMEM_TRUNCATE_DONE: { vcpu: number };
    TDP_FREE_ROOTS_RESULT: { vcpu: number; externalPages: { externalPfn: number; gfn: bigint; pgLevel: number }[]; mirrorLeaves: number };
    MMU_LOCK_READ: { vcpu: number };
    MMU_LOCK_WRITE: { vcpu: number };
    MMU_LOCK_ACQUIRED: { vcpu: number; mode: 'read' | 'write' };
    MMU_UNLOCK: { vcpu: number; mode: 'read' | 'write' };
    /** A lockless or locked walk: returns the SPTE at each level down to `pgLevel` or the first non-present. */
    /**
     * A fault's walk under mmu_lock carries the `mmuSeq` it snapshotted; the reply says whether the fault
     * is stale (is_page_fault_stale: the sequence moved since), read under the same lock (§6.ii A.5).
     */
    TDP_WALK: { vcpu: number; root: TdpRoot; gfn: bigint; mmuSeq?: number };
    /**
     * A fault's walk also answers `maxLevel`: kvm_mmu_hugepage_adjust, which kvm_tdp_mmu_map runs under
     * mmu_lock, reads lpage_info (mixed attributes, guest inhibit) there, not at faultin time.
     */
    TDP_WALK_RESULT: { vcpu: number; root: TdpRoot; gfn: bigint; path: WalkStep[]; stale?: boolean; maxLevel?: number };
    /**
     * try_cmpxchg64 on one SPTE, addressed like the kernel's sptep (page-table page + index; root/gfn/level
     * are for the reader). A `newSpte` that links a new page-table page names it in `childPfn`.
     */
    SPTE_CMPXCHG: { vcpu: number; root: TdpRoot; gfn: bigint; pgLevel: number; tablePfn: number; index: number; oldSpte: bigint; newSpte: bigint; childPfn: number | null; externalPfn?: number };
    /** ret 0 on success; -EBUSY (-16) with the current value otherwise, nothing else changed (§7.6). */
    SPTE_CMPXCHG_RESULT: { vcpu: number; ret: number; currentSpte: bigint };
  };
}

/** A memslot as kvm.mmu keeps it (machines/kvm/memslots.ts). */
export interface PublishedMemslot {
  baseGfn: bigint;
  npages: bigint;
  guestMemfd: boolean;
  id?: number;
  flags?: number;
  invalid?: boolean;
}

/** What userspace writes into run->tdx before the KVM_RUN that completes a KVM_EXIT_TDX. */
export interface TdxExitReply {
  ret: bigint;
  r11?: bigint;
  r12?: bigint;
  r13?: bigint;
  r14?: bigint;
}

/**
 * The TD_PARAMS page TDH.MNG.INIT reads through RDX, shown inline (§4.11): only the fields the model uses.
 */
export interface TdParams {
  attributes: bigint;
  /** TD_PARAMS.config_flags: MAX_GPAW for GPAW 52, NO_RBP_MOD always (§4.11). */
  configFlags: bigint;
  /** EPTP controls: WB | page-walk length − 1 in bits 5:3 (§2). */
  eptpControls: bigint;
  /** TD_PARAMS.max_vcpus: kvm->max_vcpus, which QEMU sets to its vCPU count with KVM_CAP_MAX_VCPUS. */
  maxVcpus?: number;
}

/** SEAMCALLs KVM (or a playground kthread: TDH.MEM.PAGE.RELOCATE) issues besides TDH.VP.ENTER (§4.1), by architectural name. */
export type HostSeamcall =
  | 'TDH.MNG.CREATE'
  | 'TDH.MNG.KEY.CONFIG'
  | 'TDH.MNG.ADDCX'
  | 'TDH.MNG.INIT'
  | 'TDH.MNG.RD'
  | 'TDH.VP.CREATE'
  | 'TDH.VP.ADDCX'
  | 'TDH.VP.INIT'
  | 'TDH.VP.WR'
  | 'TDH.VP.RD'
  | 'TDH.MEM.SEPT.ADD'
  | 'TDH.MEM.PAGE.ADD'
  | 'TDH.MR.EXTEND'
  | 'TDH.MR.FINALIZE'
  | 'TDH.MEM.PAGE.AUG'
  | 'TDH.MEM.RANGE.BLOCK'
  | 'TDH.MEM.RANGE.UNBLOCK'
  | 'TDH.MEM.TRACK'
  | 'TDH.MEM.PAGE.REMOVE'
  | 'TDH.MEM.SEPT.REMOVE'
  | 'TDH.MEM.PAGE.DEMOTE'
  | 'TDH.MEM.PAGE.PROMOTE'
  | 'TDH.MEM.SEPT.RD'
  | 'TDH.MEM.PAGE.RELOCATE'
  | 'TDH.PHYMEM.PAGE.WBINVD'
  | 'TDH.VP.FLUSH'
  | 'TDH.MNG.VPFLUSHDONE'
  | 'TDH.PHYMEM.CACHE.WB'
  | 'TDH.MNG.KEY.FREEID'
  | 'TDH.PHYMEM.PAGE.RECLAIM';

export interface VmEntryPayload {
  vcpu: number;
  /** TD: GPRs the module copies into the guest on return from a TDVMCALL (§5c.2 step 6); null otherwise. */
  tdcallReturn: Gprs | null;
  /** VMX: the result of KVM's instruction emulation (destination register, RIP advanced); null otherwise. */
  emulated: { reg: string | null; value: bigint | null; ripAdvance: number } | null;
}

/** The VM entry an LP performs after the TDX module's INVEPT at TDH.VP.ENTER. */
export interface VmEntryForward {
  name: 'VMLAUNCH' | 'VMRESUME';
  payload: VmEntryPayload;
}

/**
 * A message's family (`seamcall`, `td-exit`, `tdcall`, `vm-exit`, `ioctl` …), which decides how it is shown.
 */
export type MessageKind = keyof MessageCatalog;
export type NameOf<K extends MessageKind> = keyof MessageCatalog[K] & string;
/**
 * The architectural name of any message (`TDH.MEM.PAGE.AUG`, `EPT_VIOLATION`, `#VE`, `KVM_EXIT_MMIO` …).
 */
export type MessageName = { [K in MessageKind]: NameOf<K> }[MessageKind];
/** The payload type of the message named `N`, e.g. `PayloadOf<'TDH.MEM.PAGE.AUG'>`. */
export type PayloadOf<K extends MessageKind, N extends NameOf<K>> = MessageCatalog[K][N];

/** What an actor emits: the runtime adds id and cause when it queues it. */
export type Outgoing = {
  [K in MessageKind]: { [N in NameOf<K>]: { type: 'tdxsim.send'; to: ActorId; kind: K; name: N; payload: PayloadOf<K, N> } }[NameOf<K>];
}[MessageKind];

/** A queued or delivered message. */
export type Message = Omit<Outgoing, 'type'> & {
  /** Send order; FIFO within a channel and the default scheduler's order. */
  id: number;
  from: ActorId;
  /** seq of the delivery during which this message was sent, or null for the initial messages. */
  cause: number | null;
};

export type MessageOf<K extends MessageKind, N extends NameOf<K>> = Extract<Message, { kind: K; name: N }>;

/** The event an XState machine receives: `type` is the architectural name, so statecharts read naturally. */
export type MachineEvent = { type: MessageName; msg: Message };

/** Build an outgoing message with its payload type checked against the catalogue. */
export function out<K extends MessageKind, N extends NameOf<K>>(to: ActorId, kind: K, name: N, payload: PayloadOf<K, N>): Outgoing {
  return { type: 'tdxsim.send', to, kind, name, payload } as Outgoing;
}

/** Narrow a delivered message to the kind/name a transition expects (throws ModelBug on mismatch). */
export function payloadOf<K extends MessageKind, N extends NameOf<K>>(ev: { msg: Message }, kind: K, name: N): PayloadOf<K, N> {
  const m = ev.msg;
  if (m.kind !== kind || m.name !== name) {
    throw new Error(`model bug: expected ${kind} ${name}, got ${m.kind} ${m.name} (from ${m.from})`);
  }
  return m.payload as PayloadOf<K, N>;
}
