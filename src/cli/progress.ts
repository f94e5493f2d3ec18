import { MultiBar, Presets, type SingleBar } from "cli-progress";
import type { ProgressEvent, ProgressListener } from "../util/progress";
import { formatBytes } from "./output";

export interface Reporter {
  listener?: ProgressListener;
  stop(): void;
}

interface BarState {
  bar: SingleBar;
  label: string;
  value: number;
  total: number;
  started: number;
}

/**
 * Progress bars on stderr, only when stderr is a TTY and output is for humans: one bar per blob
 * in flight plus an overall bar, each with bytes, rate and ETA.
 */
export function createReporter(enabled: boolean, stream: NodeJS.WriteStream = process.stderr): Reporter {
  if (!enabled || !stream.isTTY) return { stop: () => undefined };
  const multi = new MultiBar(
    {
      stream,
      clearOnComplete: true,
      hideCursor: true,
      format: " {label} |{bar}| {percentage}% {done}/{size} {rate} ETA {eta_formatted}",
      etaBuffer: 50,
      fps: 5,
    },
    Presets.shades_classic,
  );
  const payload = (b: Omit<BarState, "bar">): Record<string, string> => {
    const secs = Math.max(0.001, (Date.now() - b.started) / 1000);
    return {
      label: b.label.padEnd(14).slice(0, 14),
      done: formatBytes(b.value),
      size: b.total ? formatBytes(b.total) : "?",
      rate: `${formatBytes(b.value / secs)}/s`,
    };
  };
  const overallState = { label: "total", value: 0, total: 0, started: Date.now() };
  const overall: BarState = { ...overallState, bar: multi.create(1, 0, payload(overallState)) };
  const bars = new Map<string, BarState>();
  const update = (b: BarState): void => {
    if (b.total < b.value) b.total = b.value;
    b.bar.setTotal(Math.max(1, b.total));
    b.bar.update(b.value, payload(b));
  };
  const listener = (ev: ProgressEvent): void => {
    if (ev.type === "start") {
      const state = { label: ev.label, value: 0, total: ev.total ?? 0, started: Date.now() };
      bars.set(ev.id, { ...state, bar: multi.create(Math.max(1, state.total), 0, payload(state)) });
      overall.total += ev.total ?? 0;
      update(overall);
      return;
    }
    const b = bars.get(ev.id);
    if (!b) return;
    if (ev.type === "advance") {
      b.value += ev.bytes;
      overall.value += ev.bytes;
      update(b);
      update(overall);
    } else {
      multi.remove(b.bar);
      bars.delete(ev.id);
    }
  };
  return { listener, stop: () => multi.stop() };
}
