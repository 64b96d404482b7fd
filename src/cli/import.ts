/**
 * `tdxsim import <trace>…`: a real trace in (trace-cmd report, raw ftrace, perf script, dmesg — several
 * files of one run are merged by timestamp), the scenario it implies written out, the model run on it, and
 * the report of where reality and the model part (src/import/). Exit 0 when they do not, 1 when they do,
 * 2 for input that cannot be read (and, under --strict, for any malformed line).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { importParsed, type ImportResult } from '../import/importTrace.ts';
import { parseTraceFiles, type TraceInput } from '../import/parseTrace.ts';
import { reportJson, reportText } from '../import/report.ts';
import type { TraceFormat } from '../import/traceEvent.ts';
import { EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK } from './exitCodes.ts';

export interface ImportCliOptions {
  format?: TraceFormat;
  strict?: boolean;
  json?: boolean;
  scenarioOut?: string;
  log?: string;
  maxSteps?: number;
}

/** Warnings shown for malformed lines before the rest is summarised as a count. */
const SHOWN_WARNINGS = 20;

export function importCommand(files: readonly string[], o: ImportCliOptions, print: (line: string) => void): number {
  const inputs: TraceInput[] = [];
  for (const file of files) {
    try {
      inputs.push({ file, text: readFileSync(file, 'utf8') });
    } catch (e) {
      process.stderr.write(`tdxsim: ${file}: cannot read the trace: ${(e as Error).message}\n`);
      return EXIT_BAD_INPUT;
    }
  }
  const trace = parseTraceFiles(inputs, o.format);
  const diag = trace.diagnostics;
  if (o.strict && diag.length > 0) {
    for (const d of diag) process.stderr.write(`${d.file}:${d.line}: ${d.message}\n`);
    process.stderr.write(`tdxsim: ${diag.length} malformed line(s); nothing written (drop --strict to read the rest)\n`);
    return EXIT_BAD_INPUT;
  }
  for (const d of diag.slice(0, SHOWN_WARNINGS)) process.stderr.write(`tdxsim: warning: ${d.file}:${d.line}: ${d.message}\n`);
  if (diag.length > SHOWN_WARNINGS) process.stderr.write(`tdxsim: warning: … ${diag.length - SHOWN_WARNINGS} more malformed line(s) skipped\n`);
  if (!trace.events.some((e) => e.data.name !== 'unknown')) {
    process.stderr.write(`tdxsim: ${files.join(', ')}: no KVM or TDX event to import${trace.events.length > 0 ? ` (${trace.events.length} event(s) of unknown kinds)` : ''}\n`);
    return EXIT_BAD_INPUT;
  }
  const r: ImportResult = importParsed(trace, { ...(o.format ? { format: o.format } : {}), ...(o.scenarioOut ? { scenarioFile: o.scenarioOut } : {}), ...(o.maxSteps !== undefined ? { maxSteps: o.maxSteps } : {}), keepLog: o.log !== undefined });
  const scenarioFile = o.scenarioOut ?? `${r.built.name}.scenario.yaml`;
  writeFileSync(scenarioFile, r.yaml);
  if (o.log !== undefined && r.logText !== null) writeFileSync(o.log, r.logText);
  const written = { scenario: scenarioFile, log: o.log ?? null };
  if (o.json) print(JSON.stringify(reportJson(r, written)));
  else for (const line of reportText(r, written)) print(line);
  return r.first === null ? EXIT_OK : EXIT_FAILURE;
}
