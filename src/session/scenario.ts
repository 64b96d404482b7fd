/**
 * Getting a scenario: from a file, a directory, a bundled example's name, YAML/JSON text, or an object
 * built in code. Every path goes through the same schema and semantic checks, so a scenario built in
 * TypeScript is refused for the same reasons, with the same field paths, as one written in YAML.
 */
import { loadScenarioFile, parseScenarioObject, parseScenarioText } from '../scenario/load.ts';
import type { Scenario, ScenarioInput } from '../scenario/schema.ts';

/**
 * Loads and validates a scenario from a YAML or JSON file, a directory holding `scenario.yaml`, or the
 * name of a bundled example (`tdxsim examples` lists them).
 * @throws ScenarioError naming the file, line, column and field (`vcpus[0].program[1].size`).
 */
export function loadScenario(pathOrExample: string): Scenario {
  return loadScenarioFile(pathOrExample).scenario;
}

/**
 * Validates scenario text (YAML, or JSON, which YAML reads too). `file` names it in errors.
 * @throws ScenarioError
 */
export function parseScenario(text: string, file = '<scenario text>'): Scenario {
  return parseScenarioText(text, file);
}

/**
 * Builds a scenario in code. The input is typed (`ScenarioInput`, the YAML format's own shape: numbers
 * as numbers, bigints or hex strings), so an editor completes its fields and a misspelt field does not
 * compile; the result is validated like a file.
 * @throws ScenarioError with the field path of the first problem
 * @example
 * const s = defineScenario({
 *   name: 'two-pages',
 *   vm: { type: 'tdx', attributes: ['SEPT_VE_DISABLE'] },
 *   memslots: [{ gpa: 0, size: 0x80000000, guestMemfd: true }],
 *   vcpus: [{ program: [{ op: 'accept', gpa: 0x200000, size: 0x2000 }] }],
 * });
 */
export function defineScenario(input: ScenarioInput): Scenario {
  return parseScenarioObject(input, `<scenario ${typeof input.name === 'string' ? input.name : 'object'}>`);
}
