/** `tdxsim examples`: the bundled scenarios, with their one-line descriptions. */
import { readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { examplesDir, loadScenarioFile } from '../scenario/load.ts';
import { EXIT_OK } from './exitCodes.ts';

export function examplesCommand(print: (line: string) => void): number {
  const dir = examplesDir();
  const names = readdirSync(dir).filter((n) => existsSync(path.join(dir, n, 'scenario.yaml'))).sort();
  const width = Math.max(...names.map((n) => n.length));
  for (const n of names) {
    const { scenario } = loadScenarioFile(path.join(dir, n));
    print(`${n.padEnd(width)}  ${scenario.description}`);
  }
  print(`# run one with: tdxsim run <name>   (scenarios live in ${path.relative(process.cwd(), dir) || dir})`);
  return EXIT_OK;
}
