/**
 * The single serialisation used for log lines, and therefore for hashes: plain `JSON.stringify` plus two
 * rules. Bigints (64-bit register values, SPTEs, GPAs) become `'0x…'` strings, and anything JSON would
 * silently drop, coerce or mangle is refused, because a log that cannot be replayed faithfully is worse
 * than no log. (-0 is written as 0, as JSON does: the model's integer arithmetic never depends on it.)
 *
 * Called once per simulated step, so the fast path is one native `JSON.stringify` with a module-level
 * replacer that only does a `typeof` switch and a lookup in the holder. The key path of a bad value is worked out afterwards, by a
 * slow walk that runs only when the fast path has already failed.
 */

/** Thrown for values JSON cannot represent faithfully; `path` is e.g. `payload.regs[2]`, or `(root)`. */
export class NotJsonError extends TypeError {
  override readonly name = 'NotJsonError';
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`stringifyCanonical: ${reason} at ${path}`);
  }
}

/** Thrown by the replacer; carries nothing because the slow walk recomputes the details. */
const REJECT = Symbol('reject');

function isPlainContainer(value: object): boolean {
  if (Array.isArray(value)) return true;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function bigintToHex(value: bigint): string {
  return value < 0n ? '-0x' + (-value).toString(16) : '0x' + value.toString(16);
}

function replacer(this: Record<string, unknown>, key: string, value: unknown): unknown {
  switch (typeof value) {
    case 'number':
      if (!Number.isFinite(value)) throw REJECT;
      return value;
    case 'boolean':
      return value;
    case 'string':
      // `value` is what toJSON returned; a raw value that differs means a Date or similar slipped in
      // (dates would also be timestamps, which the log must not contain).
      if (this[key] !== value) throw REJECT;
      return value;
    case 'bigint':
      return bigintToHex(value);
    case 'object':
      if (this[key] !== value || (value !== null && !isPlainContainer(value))) throw REJECT;
      return value;
    case 'undefined':
      // An undefined property is simply absent (that is JSON's meaning too); in an array it would turn
      // into null, which is not what the caller wrote.
      if (Array.isArray(this)) throw REJECT;
      return value;
    default: // function, symbol
      throw REJECT;
  }
}

export function stringifyCanonical(value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value, replacer);
  } catch (err) {
    // Also reached for cycles, which JSON.stringify itself rejects.
    const bad = findUnrepresentable(value);
    if (bad) throw new NotJsonError(bad.path, bad.reason);
    throw err;
  }
  if (text === undefined) throw new NotJsonError('(root)', `${typeof value} is not a JSON value`);
  return text;
}

// ---- slow path: only runs after a failure, to name the key path ------------------------------------

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

export function childPath(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  if (!IDENTIFIER.test(key)) return `${path}[${JSON.stringify(key)}]`;
  return path === '' ? key : `${path}.${key}`;
}

function findUnrepresentable(root: unknown): { path: string; reason: string } | null {
  const ancestors = new Set<object>();
  const visit = (value: unknown, path: string, inArray: boolean): { path: string; reason: string } | null => {
    const at = path === '' ? '(root)' : path;
    switch (typeof value) {
      case 'number':
        return Number.isFinite(value) ? null : { path: at, reason: `${value} is not a JSON number` };
      case 'undefined':
        return inArray || path === '' ? { path: at, reason: 'undefined (would become null or vanish)' } : null;
      case 'function':
        return { path: at, reason: 'function is not a JSON value' };
      case 'symbol':
        return { path: at, reason: 'symbol is not a JSON value' };
      case 'object': {
        if (value === null) return null;
        if (!isPlainContainer(value)) {
          const name = (value as { constructor?: { name?: string } }).constructor?.name ?? 'unknown';
          return { path: at, reason: `${name} is not a plain object or array` };
        }
        if (typeof (value as { toJSON?: unknown }).toJSON === 'function') {
          return { path: at, reason: 'object with toJSON() is not a plain value' };
        }
        if (ancestors.has(value)) return { path: at, reason: 'circular reference' };
        ancestors.add(value);
        let bad: ReturnType<typeof visit> = null;
        if (Array.isArray(value)) {
          // An index loop, not forEach/reduce: those skip holes, and a hole is exactly what we look for.
          for (let i = 0; i < value.length && bad === null; i++) bad = visit(value[i], childPath(path, i), true);
        } else {
          for (const k of Object.keys(value)) {
            bad = visit((value as Record<string, unknown>)[k], childPath(path, k), false);
            if (bad !== null) break;
          }
        }
        ancestors.delete(value);
        return bad;
      }
      default:
        return null;
    }
  };
  return visit(root, '', false);
}
