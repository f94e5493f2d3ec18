import { MultiBar, Presets, type SingleBar } from "cli-progress";
import type { ProgressEvent, ProgressListener } from "../util/progress";

export interface Reporter {
  listener?: ProgressListener;
  stop(): void;
}

/** Progress bars on stderr, only when stderr is a TTY and output is for humans. */
export function createReporter(enabled: boolean): Reporter {
  if (!enabled || !process.stderr.isTTY) return { stop: () => undefined };
  const multi = new MultiBar(
    {
      stream: process.stderr,
      clearOnComplete: true,
      hideCursor: true,
      format: " {label} |{bar}| {percentage}% {value_h}/{total_h} {rate} ETA {eta_formatted}",
      formatValue: (v, _o, type) => (type === "value" || type === "total" ? String(v) : String(v)),
      etaBuffer: 50,
    },
    Presets.shades_classic,
  );
  const bars = new Map<string, { bar: SingleBar; value: number; total: number; started: number }>();
  const human = (n: number): string =>
    n >= 1 << 30
      ? `${(n / (1 << 30)).toFixed(2)} GiB`
      : n >= 1 << 20
        ? `${(n / (1 << 20)).toFixed(1)} MiB`
        : `${(n / 1024).toFixed(0)} KiB`;
  const payload = (b: { value: number; total: number; started: number }, label: string): Record<string, string> => {
    const secs = Math.max(0.001, (Date.now() - b.started) / 1000);
    return {
      label: label.padEnd(14),
      value_h: human(b.value),
      total_h: b.total ? human(b.total) : "?",
      rate: `${human(b.value / secs)}/s`,
    };
  };
  const labels = new Map<string, string>();
  const listener = (ev: ProgressEvent): void => {
    if (ev.type === "start") {
      const total = ev.total ?? 0;
      labels.set(ev.id, ev.label);
      const state = { value: 0, total, started: Date.now(), bar: undefined as unknown as SingleBar };
      state.bar = multi.create(total || 1, 0, payload(state, ev.label));
      bars.set(ev.id, state);
    } else if (ev.type === "advance") {
      const b = bars.get(ev.id);
      if (!b) return;
      b.value += ev.bytes;
      if (!b.total) b.bar.setTotal(b.value + 1);
      b.bar.update(b.value, payload(b, labels.get(ev.id) ?? ""));
    } else {
      const b = bars.get(ev.id);
      if (!b) return;
      multi.remove(b.bar);
      bars.delete(ev.id);
    }
  };
  return { listener, stop: () => multi.stop() };
}
