/**
 * @module progress
 * A progress bar on stderr for long CLI work: redrawn in place on a terminal, a line every
 * ~10 % otherwise (CI logs), silent with `--json`.
 */
export interface Progress {
  update(done: number, note?: string): void;
  finish(note?: string): void;
}

export function progressBar(label: string, total: number, opts: { silent?: boolean; stream?: NodeJS.WriteStream } = {}): Progress {
  const out = opts.stream ?? process.stderr;
  const tty = out.isTTY === true;
  const start = Date.now();
  let lastDecile = -1;
  const render = (done: number, note = ''): string => {
    const frac = total > 0 ? Math.min(1, done / total) : 1;
    const width = 28;
    const fill = Math.round(frac * width);
    const secs = (Date.now() - start) / 1000;
    const rate = secs > 0 ? Math.round(done / secs) : 0;
    return `${label.padEnd(22)} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${String(Math.round(frac * 100)).padStart(3)}% ${done}/${total} ${rate}/s ${note}`;
  };
  return {
    update(done, note) {
      if (opts.silent) return;
      if (tty) out.write(`\r${render(done, note)}\x1b[K`);
      else {
        const d = total > 0 ? Math.floor((10 * done) / total) : 10;
        if (d > lastDecile) {
          lastDecile = d;
          out.write(`${render(done, note)}\n`);
        }
      }
    },
    finish(note) {
      if (opts.silent) return;
      if (tty) out.write(`\r${render(total, note)}\x1b[K\n`);
      else if (lastDecile < 10) out.write(`${render(total, note)}\n`);
    },
  };
}
