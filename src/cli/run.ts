/** `tdxsim run <scenario>`: run to quiescence, print one line per message, write the log. */
import { readSigningKey } from '../log/signature.ts';
import { LogWriter } from '../log/writer.ts';
import { fifoScheduler } from '../runtime/scheduler/fifo.ts';
import { randomScheduler } from '../runtime/scheduler/random.ts';
import { loadScenarioFile } from '../scenario/load.ts';
import { EXIT_FAILURE, EXIT_OK } from './exitCodes.ts';
import { formatDelivery } from '../session/format.ts';
import { formatOptionsFor, headerFor, modelFor, recordRun } from '../session/session.ts';
import { withPolicies } from '../session/policies.ts';
import type { PolicyOverrides } from '../policies.ts';

export interface RunCliOptions {
  log?: string;
  seed?: number;
  json?: boolean;
  maxSteps?: number;
  policy?: PolicyOverrides;
  /** Key file: sign the log (src/log/signature.ts). */
  signKey?: string;
}

export function runCommand(scenarioArg: string, opts: RunCliOptions, print: (line: string) => void): number {
  // Validate everything before the log file is opened, so bad input never truncates an existing log.
  const loaded = loadScenarioFile(scenarioArg);
  const scenario = withPolicies(loaded.scenario, opts.policy);
  const file = loaded.file;
  const model = modelFor(scenario);
  const scheduler = opts.seed === undefined ? fifoScheduler() : randomScheduler(opts.seed);
  const logPath = opts.log ?? `${scenario.name}.log.jsonl`;
  const signWith = opts.signKey === undefined ? undefined : readSigningKey(opts.signKey);
  const writer = LogWriter.open(logPath, headerFor(scenario, file, scheduler.descriptor), signWith === undefined ? {} : { signWith });
  const fmt = formatOptionsFor(scenario);
  if (!opts.json) print(`# ${scenario.name}: ${scenario.description}`);
  const outcome = recordRun(model, writer, {
    scheduler,
    ...(opts.maxSteps !== undefined ? { maxSteps: opts.maxSteps } : {}),
    onDelivery: (d) => print(opts.json ? writer.lastLine : formatDelivery({ seq: d.seq, ...d.message }, fmt)),
  });
  if (opts.json) print(writer.lastLine);
  writer.close();
  if (!opts.json) {
    print(`# ${outcome.steps} messages; outcome: ${outcome.status}${outcome.reason ? ` (${outcome.reason})` : ''}`);
    print(`# log: ${logPath}  (replay: tdxsim replay ${logPath} --to N)`);
  }
  return outcome.status === 'ok' ? EXIT_OK : EXIT_FAILURE;
}
