/**
 * Progress of long work on stderr, fitted to where it goes: on a terminal one live line, redrawn in place
 * at most every `liveMs` and cut to the terminal's width; into a file or a pipe (CI logs) a plain line every
 * `plainMs`, so a log shows the search moving without thousands of lines; nothing with `--quiet`.
 */
export interface ProgressTarget {
  isTTY?: boolean;
  columns?: number;
  write(s: string): unknown;
}

export interface ProgressOptions {
  quiet?: boolean;
  now?: () => number;
  /** @default 100 */
  liveMs?: number;
  /** @default 5000 */
  plainMs?: number;
}

export class Progress {
  readonly #out: ProgressTarget;
  readonly #quiet: boolean;
  readonly #now: () => number;
  readonly #liveMs: number;
  readonly #plainMs: number;
  #last = Number.NEGATIVE_INFINITY;
  #shown = false;

  constructor(out: ProgressTarget, opts: ProgressOptions = {}) {
    this.#out = out;
    this.#quiet = !!opts.quiet;
    this.#now = opts.now ?? (() => performance.now());
    this.#liveMs = opts.liveMs ?? 100;
    this.#plainMs = opts.plainMs ?? 5_000;
    if (!this.#out.isTTY) this.#last = this.#now();
  }

  /** A new reading; `line()` is only called when it will be shown. */
  update(line: () => string): void {
    if (this.#quiet) return;
    const t = this.#now();
    if (t - this.#last < (this.#out.isTTY ? this.#liveMs : this.#plainMs)) return;
    this.#last = t;
    if (!this.#out.isTTY) {
      this.#out.write(`# ${line()}\n`);
      return;
    }
    const width = Math.max(20, (this.#out.columns ?? 80) - 1);
    const text = line();
    this.#out.write(`\r\x1b[K${text.length > width ? text.slice(0, width - 1) + '…' : text}`);
    this.#shown = true;
  }

  /** Clears the live line, so what is printed next starts on a clean line. */
  clear(): void {
    if (this.#shown) this.#out.write('\r\x1b[K');
    this.#shown = false;
  }
}

/** 1234567 → "1,234,567". */
export const thousands = (n: number): string => Math.round(n).toLocaleString('en-US');

/** 0.0271 → "2.7%". */
export const percent = (part: number, whole: number): string => (whole > 0 ? `${((100 * part) / whole).toFixed(part / whole < 0.1 ? 1 : 0)}%` : '—');

/** Seconds, short: 0.4 s, 12 s, 3 min 05 s. */
export function duration(ms: number): string {
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 120) return `${Math.round(s)} s`;
  return `${Math.floor(s / 60)} min ${String(Math.round(s % 60)).padStart(2, '0')} s`;
}
