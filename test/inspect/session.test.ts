import { describe, expect, it } from 'vitest';
import { LogError } from '../../src/log/errors.ts';
import { parseLogText } from '../../src/log/reader.ts';
import { CHECKPOINT_EVERY, InspectSession } from '../../src/inspect/session.ts';
import { stepView } from '../../src/inspect/stepView.ts';
import { worldHash } from '../../src/runtime/worldHash.ts';
import { exampleLog, longMmioLog } from '../export/fixtures.ts';
import { logText } from './logText.ts';

describe('time travel over a log (checkpoints + replay forward)', () => {
  const { log, file } = longMmioLog(40);
  const session = InspectSession.open(log, file);

  it('the log is longer than a checkpoint interval, so seeking crosses checkpoints', () => {
    expect(session.steps).toBeGreaterThan(CHECKPOINT_EVERY + 10);
  });

  it('the world at any step, reached in any order, has the state hash the log recorded', () => {
    const order = [session.steps, 0, 1, CHECKPOINT_EVERY, CHECKPOINT_EVERY - 1, CHECKPOINT_EVERY + 1, 37, 36, 38, 300, 5, session.steps - 1];
    for (const n of order) {
      const w = session.worldAt(n);
      if (n > 0) expect(worldHash(session.model, w), `step ${n}`).toBe(log.events[n - 1]!.state);
      expect(w.seq).toBe(n);
    }
  });

  it('only the receiver of a step is marked changed', () => {
    for (const n of [27, 28, CHECKPOINT_EVERY, CHECKPOINT_EVERY + 1]) {
      const v = stepView(session, n);
      const changed = v.actors.filter((a) => a.changed).map((a) => a.id);
      expect(changed.every((id) => id === v.event!.to), `step ${n}: ${changed.join(', ')}`).toBe(true);
    }
  });

  it('a log the model does not reproduce is refused, naming the line that diverged', () => {
    const { log: good } = exampleLog('mmio-ve');
    // A sealed log whose step 5 claims another sender: the hash chain holds, the replay does not.
    const doctored = logText(good, (r, i) => (i === 5 ? { ...r, from: 'vmm' } : r));
    const parsed = parseLogText(doctored, 'doctored.log.jsonl');
    let err: unknown;
    try {
      InspectSession.open(parsed, 'doctored.log.jsonl');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LogError);
    expect((err as LogError).code).toBe('REPLAY_DIVERGED');
    expect((err as LogError).message).toMatch(/^doctored\.log\.jsonl:6: replay diverged at from/);
  });
});
