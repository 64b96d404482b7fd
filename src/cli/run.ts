/** `tdxsim run <scenario>`: run to quiescence, print one line per message, write the log. */
import { readSigningKey } from '../log/signature.ts';
import { LogWriter } from '../log/writer.ts';
import type { Outcome } from '../runtime/runner.ts';
import { initialWorld } from '../runtime/step.ts';
import { loadScenarioFile } from '../scenario/load.ts';
import { EXIT_FAILURE, EXIT_OK } from './exitCodes.ts';
import { formatDelivery } from '../session/format.ts';
import { formatOptionsFor, headerFor, modelFor } from '../session/session.ts';
import { runModelEvents, schedulerFor } from '../session/run.ts';
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
  const model = modelFor(scenario);
  const logPath = opts.log ?? `${scenario.name}.log.jsonl`;
  const signWith = opts.signKey === undefined ? undefined : readSigningKey(opts.signKey);
  // The checkpoint index (<log>.idx) is written alongside, so replay --to and export open any step at once.
  const writer = LogWriter.open(logPath, headerFor(scenario, loaded.file, schedulerFor(opts)().descriptor), { index: { initial: initialWorld(model) }, ...(signWith === undefined ? {} : { signWith }) });
  const fmt = formatOptionsFor(scenario);
  if (!opts.json) print(`# ${scenario.name}: ${scenario.description}`);
  let outcome: Outcome | null = null;
  runModelEvents(model, scenario, { ...(opts.seed !== undefined ? { seed: opts.seed } : {}), ...(opts.maxSteps !== undefined ? { maxSteps: opts.maxSteps } : {}), log: writer }).subscribe((e) => {
    if (e.type === 'delivery') print(opts.json ? writer.lastLine : formatDelivery({ seq: e.seq, ...e.message }, fmt));
    else outcome = e.outcome;
  });
  const o = outcome! as Outcome;
  if (opts.json) print(writer.lastLine);
  writer.close();
  if (!opts.json) {
    print(`# ${o.steps} messages; outcome: ${o.status}${o.reason ? ` (${o.reason})` : ''}`);
    print(`# log: ${logPath}  (replay: tdxsim replay ${logPath} --to N)`);
  }
  return o.status === 'ok' ? EXIT_OK : EXIT_FAILURE;
}
