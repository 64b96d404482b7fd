/**
 * The web app's built files (dist/web/, made by esbuild in `npm run build`). Only the names listed here
 * are ever served: a request path is looked up in this table, never joined onto a directory, so no URL can
 * reach another file.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** From dist/src/inspect/ (the CLI) and from src/inspect/ (tests run the sources). */
const CANDIDATES = [path.resolve(HERE, '../../web'), path.resolve(HERE, '../../dist/web')];

export const ASSETS: Readonly<Record<string, { file: string; type: string }>> = {
  '/assets/main.js': { file: 'main.js', type: 'text/javascript; charset=utf-8' },
  '/assets/main.css': { file: 'main.css', type: 'text/css; charset=utf-8' },
  '/assets/main.js.map': { file: 'main.js.map', type: 'application/json; charset=utf-8' },
  '/assets/main.css.map': { file: 'main.css.map', type: 'application/json; charset=utf-8' },
};

export function webDir(): string | null {
  return CANDIDATES.find((d) => existsSync(path.join(d, 'main.js'))) ?? null;
}

/** Reads every listed asset once from `dir` (default: the built app); null when the app was never built. */
export function loadAssets(dir: string | null = webDir()): Map<string, { body: Buffer; type: string }> | null {
  if (dir === null || !existsSync(path.join(dir, 'main.js'))) return null;
  const out = new Map<string, { body: Buffer; type: string }>();
  for (const [url, a] of Object.entries(ASSETS)) {
    const file = path.join(dir, a.file);
    if (existsSync(file)) out.set(url, { body: readFileSync(file), type: a.type });
  }
  return out;
}
