/*
 * parallel-faults (examples/parallel-faults) in Promela, for `npm run bench`'s comparison of the explorer
 * with Spin on the same race. Two vCPUs of one TD accept 0x200000 and 0x201000; both EPT-violation exits
 * need the same three missing S-EPT levels above the 2M range, and both vCPU threads walk the same mirror
 * page tables under read mmu_lock, freezing each SPTE they make present (cmpxchg to FROZEN_SPTE →
 * TDH.MEM.SEPT.ADD or TDH.MEM.PAGE.AUG → final value); a thread that meets a frozen SPTE retries locally.
 *
 * How it maps (bench/promela/README.md has the table): one process per actor of the simulator, one
 * channel per (sender, receiver) pair, FIFO as the simulator's; every delivery is one atomic step of its
 * receiver, which reads the message and sends what the simulator's machine would send, so a Spin state
 * is a simulator state: each actor's state and context, and the messages in flight per channel. What a
 * machine keeps in its context and this model does not (GPRs, addresses, PAMT entries, which follow from
 * the S-EPT entries here) is the same in every state of this scenario, or follows from what is kept.
 *
 * The invariants are the example's declared ones, as assertions: no-failure (no KVM_BUG_ON: a SEAMCALL
 * error other than BUSY), sept-parent-first (no SEPT.ADD/AUG under a missing parent), no-deadlock (an
 * end state has both vCPU threads halted and mmu_lock free, asserted on `timeout`), ept-violation-progress (the zero-step count, which an
 * ACCEPT's exit never raises, stays 0) and no-private-data-to-host (nothing private is written in this
 * scenario: the guests only accept).
 */

mtype = {
  /* ioctls and their returns */ SET_ATTRS, INIT_VM, INIT_VCPU, FINALIZE, KVM_RUN, RET,
  /* kvm.mmu */ LOCK_READ, LOCK_WRITE, UNLOCK, LOCK_ACQUIRED, SCAN, SCAN_RESULT, SET_ATTR, SET_ATTR_DONE, INV_END,
              SEQ_READ, SEQ, FAULTIN, FAULTIN_RESULT, WALK, WALK_RESULT, CMPXCHG, CMPXCHG_RESULT, SPTE_WRITE,
  /* SEAMCALLs (the return carries the leaf's name too) */ MNG_CREATE, MNG_KEY_CONFIG, MNG_ADDCX, MNG_INIT, MNG_RD, MR_FINALIZE,
              VP_CREATE, VP_ADDCX, VP_INIT, VP_WR, VP_ENTER, SEPT_ADD, PAGE_AUG,
  /* the module stepping itself, TD entries and exits */ ENTER_EPOCH, VMLAUNCH, VMRESUME, EPT_VIOLATION, TDCALL,
  /* the guest and its CPU; memory */ INVEPT, ACCEPT, ACCEPT_RET, HLT, MEM_ZERO, MEM_DONE
};

/* An SPTE: non-present, frozen, a present leaf, or a present non-leaf pointing at page 4 + 4·vcpu + k,
   the k-th page of that vCPU's page cache (which pages are linked where is part of the state, as in the
   simulator, where the SPTE holds the page's PFN). */
#define NP 0
#define FZ 1
#define LEAF 2
#define PAGE(v, k) (4 + 4 * (v) + (k))

/* An S-EPT entry: FREE, or the external page 1 + 4·vcpu + k; a leaf: FREE, PENDING, MAPPED. */
#define FREE 0
#define PENDING 1
#define MAPPED 2
#define BUSY 255
#define TDCALL_EXIT 4

/* How many vCPUs accept (vCPU 0 first); the others only HLT. 2 is the example; the bench also runs 0 and 1
   to compare the state counts of the parts (spin -DACCEPTING=1 …). */
#ifndef ACCEPTING
#define ACCEPTING 2
#endif
#define ACCEPTS(v) ((v) < ACCEPTING)

/* Channels (sender → receiver); every message is a name and up to three bytes. */
#define CH [2] of { mtype, byte, byte, byte }
chan vmm_vm = CH;
chan vm_vmm = CH;
chan vmm_vcpu[2] = CH;
chan vcpu_vmm[2] = CH;
chan vm_mmu = CH;
chan mmu_vm = CH;
chan vm_tdx = CH;
chan tdx_vm = CH;
chan vcpu_mmu[2] = CH;
chan mmu_vcpu[2] = CH;
chan vcpu_tdx[2] = CH;
chan tdx_vcpu[2] = CH;
chan tdx_tdx = CH;
chan tdx_guest[2] = CH;
chan guest_cpu[2] = CH;
chan tdx_cpu[2] = CH;
chan cpu_guest[2] = CH;
chan cpu_tdx[2] = CH;
chan tdx_mem = CH;
chan mem_tdx = CH;

bool failure;           /* a KVM_BUG_ON: the VM is dead */
bool halted[2];         /* kvm.vcpuN blocked in HLT */
bool mmuLocked;         /* mmu_lock held by someone */

/* Scratch for the fields of the message being received: used only inside one atomic step, so not part of
   the state (hidden). */
hidden mtype m;
hidden byte a, b, c, w, cur, g;

/* The VMM: builds the TD one ioctl at a time, then runs both vCPUs (KVM_RUN to both in one step). */
active proctype Vmm() {
  byte st = 0;
  vmm_vm!SET_ATTRS, 0, 0, 0;
end:
  do
  :: atomic { vm_vmm?m, a, b, c ->
       if
       :: st == 0 -> vmm_vm!INIT_VM, 0, 0, 0; st = 1
       :: st == 1 -> vmm_vcpu[0]!INIT_VCPU, 0, 0, 0; st = 2
       :: st == 4 -> vmm_vcpu[0]!KVM_RUN, 0, 0, 0; vmm_vcpu[1]!KVM_RUN, 0, 0, 0; st = 5
       fi;
       m = 0 }
  :: atomic { vcpu_vmm[0]?m, a, b, c -> assert(st == 2); vmm_vcpu[1]!INIT_VCPU, 0, 0, 0; st = 3; m = 0 }
  :: atomic { vcpu_vmm[1]?m, a, b, c -> assert(st == 3); vmm_vm!FINALIZE, 0, 0, 0; st = 4; m = 0 }
  od
}

/* kvm.vm: the attribute change — the zap scan under write mmu_lock, the attribute store, then
   kvm_mmu_invalidate_end under write mmu_lock again (its unlock goes out with the ioctl's return) —,
   KVM_TDX_INIT_VM's SEAMCALLs (six TDCS pages, two TDH.MNG.RD), TDH.MR.FINALIZE. */
active proctype KvmVm() {
  byte st = 0, addcx = 0;
end:
  do
  :: atomic { vmm_vm?m, a, b, c ->
       if
       :: m == SET_ATTRS -> vm_mmu!LOCK_WRITE, 2, 0, 0; st = 1
       :: m == INIT_VM -> vm_tdx!MNG_CREATE, 0, 0, 0; st = 5
       :: m == FINALIZE -> vm_tdx!MR_FINALIZE, 0, 0, 0; st = 9
       fi;
       m = 0 }
  :: atomic { mmu_vm?m, a, b, c ->
       if
       :: st == 1 -> vm_mmu!SCAN, 0, 0, 0; st = 2
       :: st == 2 -> vm_mmu!UNLOCK, 2, 0, 0; vm_mmu!SET_ATTR, 0, 0, 0; st = 3
       :: st == 3 -> vm_mmu!LOCK_WRITE, 2, 0, 0; st = 11
       :: st == 11 -> vm_mmu!INV_END, 0, 0, 0; vm_mmu!UNLOCK, 2, 0, 0; vm_vmm!RET, 0, 0, 0; st = 4
       fi;
       m = 0 }
  :: atomic { tdx_vm?m, a, b, c ->
       assert(a == 0);
       if
       :: st == 5 -> vm_tdx!MNG_KEY_CONFIG, 0, 0, 0; st = 6
       :: st == 6 -> vm_tdx!MNG_ADDCX, addcx, 0, 0; st = 7
       :: st == 7 && addcx < 5 -> addcx++; vm_tdx!MNG_ADDCX, addcx, 0, 0
       :: st == 7 && addcx == 5 -> vm_tdx!MNG_INIT, 0, 0, 0; st = 8; addcx = 0
       :: st == 8 -> vm_tdx!MNG_RD, 0, 0, 0; st = 12
       :: st == 12 -> vm_tdx!MNG_RD, 1, 0, 0; st = 13
       :: st == 13 -> vm_vmm!RET, 0, 0, 0; st = 4
       :: st == 9 -> vm_vmm!RET, 0, 0, 0; st = 10
       fi;
       m = 0 }
  od
}

/* kvm.mmu: mmu_lock (readers in the order they got it, one writer, FIFO waiters; a reader waits behind a
   waiting writer), the mirror SPTEs on the two faults' paths (L4[0], L3[0], L2[1], L1[0], L1[1]), the
   PRIVATE attribute and mmu_invalidate_seq (moved on by the attribute change's kvm_mmu_invalidate_end).
   A cmpxchg answers 0 or -EBUSY with the current value. */
active proctype KvmMmu() {
  byte r0 = 0, r1 = 0, wr = 0, w0 = 0, w1 = 0;  /* readers, writer, waiters: actor 1 + vcpu, or 3 (kvm.vm); 0 none */
  byte l4 = NP, l3 = NP, l2 = NP, l1[2];
  bool attrs = false;
  byte seq = 0;
  byte grant[2];
end:
  do
  :: atomic {
       if
       :: vcpu_mmu[0]?m, a, b, c -> w = 0
       :: vcpu_mmu[1]?m, a, b, c -> w = 1
       :: vm_mmu?m, a, b, c -> w = 2
       fi;
       g = 0;
       if
       :: m == LOCK_READ || m == LOCK_WRITE ->
            if
            :: wr == 0 && w0 == 0 && (m == LOCK_READ || r0 == 0) ->
                 if :: m == LOCK_WRITE -> wr = w + 1 :: else -> if :: r0 == 0 -> r0 = w + 1 :: else -> r1 = w + 1 fi fi;
                 grant[0] = w + 1; g = 1
            :: else -> if :: w0 == 0 -> w0 = w + 1 + (m == LOCK_WRITE) * 8 :: else -> w1 = w + 1 + (m == LOCK_WRITE) * 8 fi
            fi
       :: m == UNLOCK ->
            if
            :: wr == w + 1 -> wr = 0
            :: r0 == w + 1 -> r0 = r1; r1 = 0
            :: r1 == w + 1 -> r1 = 0
            fi;
            /* wake waiters in order: one writer alone, or every reader up to the next writer */
            do
            :: w0 != 0 && wr == 0 && w0 >= 8 && r0 == 0 -> wr = w0 - 8; grant[g] = w0 - 8; g++; w0 = w1; w1 = 0; break
            :: w0 != 0 && wr == 0 && w0 < 8 -> if :: r0 == 0 -> r0 = w0 :: else -> r1 = w0 fi; grant[g] = w0; g++; w0 = w1; w1 = 0
            :: else -> break
            od
       :: m == SCAN -> mmu_vm!SCAN_RESULT, 0, 0, 0
       :: m == SET_ATTR -> attrs = true; mmu_vm!SET_ATTR_DONE, 0, 0, 0
       :: m == INV_END -> seq++
       :: m == SEQ_READ -> mmu_vcpu[w]!SEQ, seq, 0, 0
       :: m == FAULTIN -> mmu_vcpu[w]!FAULTIN_RESULT, attrs, 0, 0
       :: m == WALK ->   /* b = the fault's snapshot; the path (L1 is read by the vCPU's own slot below), stale as 128 in c */
            mmu_vcpu[w]!WALK_RESULT, l4, l3, l2 + 128 * (b != seq)
       :: m == CMPXCHG ->   /* a = level, b = old, c = new */
            if
            :: a == 4 -> cur = l4 :: a == 3 -> cur = l3 :: a == 2 -> cur = l2 :: a == 1 -> cur = l1[w]
            fi;
            if
            :: cur == b ->
                 if :: a == 4 -> l4 = c :: a == 3 -> l3 = c :: a == 2 -> l2 = c :: a == 1 -> l1[w] = c fi;
                 mmu_vcpu[w]!CMPXCHG_RESULT, 0, c, 0
            :: else -> mmu_vcpu[w]!CMPXCHG_RESULT, 1, cur, 0
            fi
       :: m == SPTE_WRITE ->   /* the owner of a frozen SPTE stores its final value */
            if
            :: a == 4 -> assert(l4 == FZ); l4 = c
            :: a == 3 -> assert(l3 == FZ); l3 = c
            :: a == 2 -> assert(l2 == FZ); l2 = c
            :: a == 1 -> assert(l1[w] == FZ); l1[w] = c
            fi
       fi;
       mmuLocked = wr != 0 || r0 != 0;
       /* MMU_LOCK_ACQUIRED to every thread the lock operation let in */
       do
       :: g > 0 -> g--;
            if
            :: grant[g] == 1 -> mmu_vcpu[0]!LOCK_ACQUIRED, 0, 0, 0
            :: grant[g] == 2 -> mmu_vcpu[1]!LOCK_ACQUIRED, 0, 0, 0
            :: grant[g] == 3 -> mmu_vm!LOCK_ACQUIRED, 0, 0, 0
            fi;
            grant[g] = 0
       :: else -> break
       od;
       m = 0; a = 0; b = 0; c = 0; w = 0; cur = 0 }
  od
}

/* The TDX module: the TD's build state, each vCPU's (created, TDCX pages, initialised, launched, in the TD),
   the TD epoch's count of vCPUs inside, the S-EPT entries above and at the two pages, an ACCEPT waiting
   for its page to be cleared. The S-EPT tree lock is taken only by a zero-step filter, which an ACCEPT's
   exit never arms: SEPT.ADD and AUG would see BUSY with it held. */
active proctype TdxModule() {
  byte td = 0, vc[2], launched[2], inTd[2], zeroStep[2], lastExit[2], entering[2];
  byte inTdCount = 0;
  byte s3 = FREE, s2 = FREE, s1 = FREE, leaf[2];
  bool treeHeld = false;
  byte accepting[2];
end:
  do
  :: atomic { vm_tdx?m, a, b, c ->
       td++; tdx_vm!m, 0, 0, 0; m = 0; a = 0 }
  :: atomic {
       if
       :: vcpu_tdx[0]?m, a, b, c -> w = 0
       :: vcpu_tdx[1]?m, a, b, c -> w = 1
       fi;
       if
       :: m == VP_CREATE || m == VP_ADDCX || m == VP_INIT || m == VP_WR -> vc[w]++; tdx_vcpu[w]!m, 0, 0, 0
       :: m == VP_ENTER -> inTdCount++; entering[w] = 1; tdx_tdx!ENTER_EPOCH, w, 0, 0
       :: m == SEPT_ADD ->   /* a = TDX level, b = external page */
            assert(a == 3 || (a == 2 && s3 != FREE) || (a == 1 && s2 != FREE));   /* sept-parent-first */
            if
            :: treeHeld -> tdx_vcpu[w]!m, BUSY, 0, 0
            :: else ->
                 if :: a == 3 -> s3 = b :: a == 2 -> s2 = b :: a == 1 -> s1 = b fi;
                 tdx_vcpu[w]!m, 0, 0, 0
            fi
       :: m == PAGE_AUG ->
            assert(s1 != FREE);   /* sept-parent-first */
            if
            :: treeHeld -> tdx_vcpu[w]!m, BUSY, 0, 0
            :: else -> leaf[w] = PENDING; tdx_vcpu[w]!m, 0, 0, 0
            fi
       fi;
       m = 0; a = 0; b = 0; w = 0 }
  :: atomic { tdx_tdx?m, w, b, c ->   /* ENTER_EPOCH: counted into the epoch, the guest runs */
       entering[w] = 0; inTd[w] = 1;
       /* the LP has not flushed at this TD's epoch before its first entry: INVEPT first, the CPU then enters */
       if :: launched[w] -> tdx_guest[w]!VMRESUME, 0, 0, 0 :: else -> tdx_cpu[w]!INVEPT, 0, 0, 0; launched[w] = 1 fi;
       m = 0; w = 0 }
  :: atomic {
       if
       :: cpu_tdx[0]?m, a, b, c -> w = 0
       :: cpu_tdx[1]?m, a, b, c -> w = 1
       fi;
       if
       :: m == ACCEPT ->   /* walk the S-EPT to the page: PENDING → clear it; missing → EPT-violation exit at that level */
            if
            :: leaf[w] == PENDING -> accepting[w] = 1; tdx_mem!MEM_ZERO, w, 0, 0
            :: else ->
                 inTd[w] = 0; inTdCount--; lastExit[w] = 1;
                 assert(zeroStep[w] == 0);   /* ept-violation-progress: an ACCEPT's exit is not counted */
                 if
                 :: s3 == FREE -> tdx_vcpu[w]!EPT_VIOLATION, 3, 0, 0
                 :: s3 != FREE && s2 == FREE -> tdx_vcpu[w]!EPT_VIOLATION, 2, 0, 0
                 :: s2 != FREE && s1 == FREE -> tdx_vcpu[w]!EPT_VIOLATION, 1, 0, 0
                 :: s1 != FREE -> tdx_vcpu[w]!EPT_VIOLATION, 0, 0, 0
                 fi
            fi
       :: m == HLT -> inTd[w] = 0; inTdCount--; lastExit[w] = 2; tdx_vcpu[w]!TDCALL, 0, 0, 0
       fi;
       m = 0; w = 0 }
  :: atomic { mem_tdx?m, w, b, c ->
       assert(accepting[w] == 1); accepting[w] = 0; leaf[w] = MAPPED; tdx_guest[w]!ACCEPT_RET, 0, 0, 0; m = 0; w = 0 }
  od
}

/* A guest vCPU: ACCEPT its page (again after each entry until it succeeds), then HLT. */
active [2] proctype Guest() {
  byte v = _pid - 4;   /* pids: Vmm 0, KvmVm 1, KvmMmu 2, TdxModule 3, Guest 4–5, Cpu 6–7, Memory 8, KvmVcpu 9–10 */
  byte st = 0;
end:
  do
  :: atomic {
       if :: tdx_guest[v]?m, a, b, c :: cpu_guest[v]?m, a, b, c fi;
       if
       :: (m == VMLAUNCH || m == VMRESUME) && ACCEPTS(v) -> assert(st < 2); guest_cpu[v]!ACCEPT, 0, 0, 0; st = 1
       :: (m == VMLAUNCH || m == VMRESUME) && !ACCEPTS(v) -> guest_cpu[v]!HLT, 0, 0, 0; st = 2
       :: m == ACCEPT_RET -> guest_cpu[v]!HLT, 0, 0, 0; st = 2
       fi;
       m = 0 }
  od
}

/* A CPU: the TDCALL goes to the module; the first entry's INVEPT (an empty TLB) then VMLAUNCH. */
active [2] proctype Cpu() {
  byte v = _pid - 6;
end:
  do
  :: atomic { guest_cpu[v]?m, a, b, c -> cpu_tdx[v]!m, 0, 0, 0; m = 0 }
  :: atomic { tdx_cpu[v]?m, a, b, c -> cpu_guest[v]!VMLAUNCH, 0, 0, 0; m = 0 }
  od
}

/* Memory: MOVDIR64B of the accepted page with the TD's key. */
active proctype Memory() {
  bool zeroed[2];
end:
  do
  :: atomic { tdx_mem?m, w, b, c -> zeroed[w] = true; mem_tdx!MEM_DONE, w, 0, 0; m = 0; w = 0 }
  od
}

/* A KVM vCPU thread: KVM_TDX_INIT_VCPU (VP.CREATE, five VP.ADDCX, VP.INIT, three VP.WR), KVM_RUN, the fault path of an
   ACCEPT's EPT violation (faultin, read mmu_lock, walk, freeze → SEPT.ADD → final value per missing level,
   freeze → AUG → leaf; a frozen SPTE or a lost cmpxchg: unlock and retry locally), HLT. */
active [2] proctype KvmVcpu() {
  byte v = _pid - 9;
  byte st = 0, addcx = 0;
  byte exitLevel = 0, lastRet = 0;
  byte at = 0, seen4, seen3, seen2, seen1;   /* the fault: level being mapped, the walk's SPTEs */
  byte cache = 0;                            /* pages taken from the page caches */
  byte frozen = 0;                           /* level of the SPTE this thread froze */
  byte snap = 0;                             /* the fault's mmu_invalidate_seq snapshot + 1; 0: none yet */
  bool pfnKnown = false;                     /* the fault's pfn, kept across a local retry */
end:
  do
  :: atomic { vmm_vcpu[v]?m, a, b, c ->
       if
       :: m == INIT_VCPU -> vcpu_tdx[v]!VP_CREATE, 0, 0, 0; st = 1
       :: m == KVM_RUN -> vcpu_tdx[v]!VP_ENTER, 0, 0, 0; st = 3
       fi;
       m = 0 }
  :: atomic { tdx_vcpu[v]?m, a, b, c ->
       if
       :: m == VP_CREATE -> vcpu_tdx[v]!VP_ADDCX, 0, 0, 0; st = 2
       :: m == VP_ADDCX && addcx < 4 -> addcx++; vcpu_tdx[v]!VP_ADDCX, addcx, 0, 0
       :: m == VP_ADDCX && addcx == 4 -> vcpu_tdx[v]!VP_INIT, 0, 0, 0; addcx = 0
       :: m == VP_INIT -> vcpu_tdx[v]!VP_WR, 0, 0, 0; addcx = 0
       :: m == VP_WR && addcx < 2 -> addcx++; vcpu_tdx[v]!VP_WR, addcx, 0, 0
       :: m == VP_WR && addcx == 2 -> vcpu_vmm[v]!RET, 0, 0, 0; st = 0; addcx = 0
       :: m == EPT_VIOLATION -> exitLevel = a; pfnKnown = false; vcpu_mmu[v]!SEQ_READ, 0, 0, 0; st = 4
       :: m == TDCALL -> exitLevel = TDCALL_EXIT; st = 10; halted[v] = true   /* HLT: blocked */
       :: m == SEPT_ADD ->
            if
            :: a == BUSY -> failure = true; assert(!failure)   /* KVM_BUG_ON */
            :: else ->
                 /* the final value; the walk goes on in the new, empty page one level down */
                 vcpu_mmu[v]!SPTE_WRITE, frozen, 0, PAGE(v, cache);
                 cache++; at = frozen - 1; frozen = at;
                 if
                 :: at == 1 -> vcpu_mmu[v]!CMPXCHG, 1, NP, FZ; st = 8
                 :: else -> vcpu_mmu[v]!CMPXCHG, at, NP, FZ; st = 7
                 fi
            fi
       :: m == PAGE_AUG ->
            assert(a == 0);
            vcpu_mmu[v]!SPTE_WRITE, 1, 0, LEAF; vcpu_mmu[v]!UNLOCK, 0, 0, 0; vcpu_tdx[v]!VP_ENTER, 0, 0, 0;
            lastRet = 1; at = 0; frozen = 0; seen4 = 0; seen3 = 0; seen2 = 0; seen1 = 0; snap = 0; pfnKnown = false; st = 3
       fi;
       m = 0; a = 0 }
  :: atomic { mmu_vcpu[v]?m, a, b, c ->
       if
       :: m == SEQ -> snap = a + 1; vcpu_mmu[v]!FAULTIN, 0, 0, 0; st = 11
       :: m == FAULTIN_RESULT -> assert(a == 1); pfnKnown = true; vcpu_mmu[v]!LOCK_READ, 0, 0, 0; st = 5
       :: m == LOCK_ACQUIRED -> vcpu_mmu[v]!WALK, 0, snap - 1, 0; st = 6
       :: m == WALK_RESULT && c >= 128 ->   /* is_page_fault_stale: the sequence moved on since the snapshot */
            vcpu_mmu[v]!UNLOCK, 0, 0, 0; vcpu_mmu[v]!SEQ_READ, 0, 0, 0; snap = 0; st = 4
       :: m == WALK_RESULT && c < 128 ->
            seen4 = a; seen3 = b; seen2 = c; seen1 = NP;
            /* kvm_tdp_mmu_map: descend through present levels; stop at a frozen one or a missing one */
            if
            :: a == FZ || (a != NP && b == FZ) || (a != NP && b != NP && c == FZ) ->
                 vcpu_mmu[v]!UNLOCK, 0, 0, 0; vcpu_mmu[v]!SEQ_READ, 0, 0, 0; seen4 = 0; seen3 = 0; seen2 = 0; seen1 = 0; snap = 0; st = 4   /* RET_PF_RETRY, local retry */
            :: a == NP -> at = 4; frozen = 4; vcpu_mmu[v]!CMPXCHG, 4, NP, FZ; st = 7
            :: a > FZ && b == NP -> at = 3; frozen = 3; vcpu_mmu[v]!CMPXCHG, 3, NP, FZ; st = 7
            :: a > FZ && b > FZ && c == NP -> at = 2; frozen = 2; vcpu_mmu[v]!CMPXCHG, 2, NP, FZ; st = 7
            :: a > FZ && b > FZ && c > FZ -> at = 1; frozen = 1; vcpu_mmu[v]!CMPXCHG, 1, NP, FZ; st = 8
            fi
       :: m == CMPXCHG_RESULT && a != 0 ->   /* lost: unlock, retry */
            frozen = 0; at = 0; seen4 = 0; seen3 = 0; seen2 = 0; seen1 = 0; snap = 0; vcpu_mmu[v]!UNLOCK, 0, 0, 0; vcpu_mmu[v]!SEQ_READ, 0, 0, 0; st = 4
       :: m == CMPXCHG_RESULT && a == 0 && st == 7 ->   /* SEPT.ADD of the page below the frozen SPTE */
            vcpu_tdx[v]!SEPT_ADD, frozen - 1, 1 + 4 * v + cache, 0; st = 9
       :: m == CMPXCHG_RESULT && a == 0 && st == 8 -> vcpu_tdx[v]!PAGE_AUG, 0, 0, 0; st = 9
       fi;
       m = 0; a = 0; b = 0; c = 0 }
  od
}

/* no-deadlock: when nothing can move, both vCPU threads are halted and mmu_lock is free. */
active proctype NoDeadlock() {
  timeout -> assert(halted[0] && halted[1] && !mmuLocked)
}



