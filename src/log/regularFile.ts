/**
 * Reading an input file (a log, a scenario, a key) that must be a regular file. A FIFO would block the
 * read until some writer appeared, /dev/zero would fill memory and a directory has no text: each is refused
 * by what it is, before a byte is read. The file is opened without blocking and checked on the open
 * descriptor, so nothing can swap it between the check and the read.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync, statSync, type Stats } from 'node:fs';

/** Thrown for a path that exists but is not a regular file; `what` says what it is ("a FIFO"). */
export class NotRegularFileError extends Error {
  override readonly name = 'NotRegularFileError';
  constructor(
    readonly path: string,
    readonly what: string,
  ) {
    super(`${what} is not a regular file`);
  }
}

/** "a FIFO", "a directory", …: what a non-regular file is, in the words `ls -l` users know. */
export function fileKind(s: Stats): string {
  if (s.isFile()) return 'a regular file';
  if (s.isDirectory()) return 'a directory';
  if (s.isFIFO()) return 'a FIFO';
  if (s.isCharacterDevice()) return 'a character device';
  if (s.isBlockDevice()) return 'a block device';
  if (s.isSocket()) return 'a socket';
  return 'a special file';
}

/** What `path` is when it exists and is not a regular file (symbolic links followed); null otherwise. */
export function nonRegularKind(path: string): string | null {
  let s: Stats;
  try {
    s = statSync(path);
  } catch {
    return null;
  }
  return s.isFile() ? null : fileKind(s);
}

/**
 * A descriptor open for reading on `path`, which is a regular file (checked on the descriptor). The caller
 * closes it. Throws NotRegularFileError, or the operating system's error (ENOENT, EACCES, …).
 */
export function openRegularFile(path: string): number {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. It changes nothing for a
  // regular file, whose reads never block.
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const s = fstatSync(fd);
    if (!s.isFile()) throw new NotRegularFileError(path, fileKind(s));
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}

/** The file's bytes. Throws NotRegularFileError, or the operating system's error (ENOENT, EACCES, …). */
export function readRegularFile(path: string): Buffer {
  const fd = openRegularFile(path);
  try {
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}
