/** `--open`: hand the URL to the desktop's browser (xdg-open, open, start), without waiting for it. */
import { spawn } from 'node:child_process';

export function openInBrowser(url: string, warn: (line: string) => void): void {
  const [cmd, args] =
    process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '""', url]] : ['xdg-open', [url]];
  try {
    const child = spawn(cmd, args, { detached: true, stdio: 'ignore' });
    child.on('error', () => warn(`# could not start a browser (${cmd}); open ${url} yourself`));
    child.unref();
  } catch {
    warn(`# could not start a browser (${cmd}); open ${url} yourself`);
  }
}
