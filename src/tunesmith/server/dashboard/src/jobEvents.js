// A job's events, fetched incrementally: each poll reads the newest page and stops at the
// first event already held (ids are time-ordered, lists are newest first).
import { useCallback, useRef, useState } from "preact/hooks";
import { api } from "./api.js";

export function useJobEvents(jobId) {
  const [events, setEvents] = useState([]);
  const known = useRef(new Set());

  const refresh = useCallback(async () => {
    const fresh = [];
    let after = null;
    for (;;) {
      const limit = known.current.size ? 100 : 1000;
      const cursor = after ? `&after=${encodeURIComponent(after)}` : "";
      const page = await api(`/fine_tuning/jobs/${jobId}/events?limit=${limit}${cursor}`);
      let reachedKnown = false;
      for (const event of page.data) {
        if (known.current.has(event.id)) {
          reachedKnown = true;
          break;
        }
        fresh.push(event);
      }
      if (reachedKnown || !page.has_more || !page.data.length) break;
      after = page.last_id;
    }
    if (!fresh.length) return;
    fresh.forEach((event) => known.current.add(event.id));
    setEvents((old) => [...fresh, ...old]);
  }, [jobId]);

  return { events, refresh };
}

/** Metrics events as one row per step (the latest report of a step wins), in step order. */
export function metricsByStep(events) {
  const byStep = new Map();
  for (let i = events.length - 1; i >= 0; i--) {
    const event = events[i];
    if (event.type === "metrics" && event.data?.step != null)
      byStep.set(event.data.step, event.data);
  }
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

/** The total number of steps, from the metrics or the "started" event's plan. */
export function totalSteps(events, metrics) {
  const last = metrics[metrics.length - 1];
  if (last?.total_steps) return last.total_steps;
  const plan = events.find((e) => e.data?.total_steps && e.type === "message");
  return plan?.data?.total_steps ?? null;
}
