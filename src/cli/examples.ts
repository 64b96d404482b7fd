/** `tdxsim examples`: the bundled scenarios, with their one-line descriptions. */
import { readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { examplesDir, loadScenarioFile } from '../scenario/load.ts';
import { EXIT_OK } from './exitCodes.ts';

export function examplesCommand(opts: { json?: boolean }, print: (line: string) => void): number {
  const dir = examplesDir();
  const names = readdirSync(dir).filter((n) => existsSync(path.join(dir, n, 'scenario.yaml'))).sort();
  const examples = names.map((n) => {
    const { scenario, file } = loadScenarioFile(path.join(dir, n));
    return { name: n, description: scenario.description, vcpus: scenario.vcpus.length, file: path.resolve(file), readme: existsSync(path.join(dir, n, 'README.md')) ? path.join(dir, n, 'README.md') : null };
  });
  if (opts.json) {
    print(JSON.stringify(examples, null, 2));
    return EXIT_OK;
  }
  const width = Math.max(...names.map((n) => n.length));
  for (const e of examples) print(`${e.name.padEnd(width)}  ${e.description}`);
  print(`# run one with: tdxsim run <name>   (scenarios live in ${path.relative(process.cwd(), dir) || dir})`);
  return EXIT_OK;
}
