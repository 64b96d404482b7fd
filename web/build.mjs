// Bundles the inspector's web app (web/main.ts and the stylesheet it imports) with esbuild into one ES
// module and one stylesheet: no CDN, nothing fetched at run time. `npm run build` calls it with no
// argument (output: dist/web/); the browser tests call buildWeb() with a scratch directory.
import { build } from 'esbuild';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export async function buildWeb(outdir = path.join(HERE, '..', 'dist', 'web')) {
  await build({
    entryPoints: [path.join(HERE, 'main.ts')],
    bundle: true,
    format: 'esm',
    target: 'es2022',
    minify: true,
    sourcemap: true,
    outdir,
    logLevel: 'warning',
  });
  return outdir;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  await buildWeb(process.argv[2]);
}
