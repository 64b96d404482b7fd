/**
 * Non-progress: no reachable loop that a fair scheduler could run for ever leaves a guest vCPU without
 * retiring its instruction, or the VMM waiting for an ioctl (src/explore/progress.ts says what progress
 * is, src/explore/liveness/nonProgress.ts what fair is). Unlike the other entries it is not a check of one
 * delivery: the depth-first search records the state graph, and the check runs on it after the search.
 * `check` is therefore never the verdict; the explorer looks at `liveness` instead. Walks (`--mode random`,
 * `pct`) and worker threads do not record a graph and cannot check it.
 */
import type { Invariant } from './invariant.ts';

export const NON_PROGRESS = 'non-progress';

export const nonProgress: Invariant = {
  name: NON_PROGRESS,
  description:
    'no fair loop starves a thread: no reachable cycle in which a guest vCPU never retires its instruction (or the VMM waits for an ioctl) while every message in flight throughout is delivered; and some end state stays reachable (checked on the state graph after a depth-first search)',
  liveness: true,
  check: () => null,
};
