import { useState } from "preact/hooks";
import { Empty } from "./ui.jsx";

const SHOWN = 50;

export function JobEvents({ events }) {
  const [all, setAll] = useState(false);
  const [metrics, setMetrics] = useState(false);
  const visible = events.filter((e) => metrics || e.type !== "metrics");
  const shown = all ? visible : visible.slice(0, SHOWN);
  return (
    <div class="events">
      <label class="choice">
        <input
          type="checkbox"
          checked={metrics}
          onChange={(e) => setMetrics(e.currentTarget.checked)}
        />
        Show metrics events
      </label>
      {!shown.length && <Empty>No events yet.</Empty>}
      <ol class="event-log" aria-label="Events, newest first">
        {shown.map((e) => (
          <li key={e.id} class={`event level-${e.level}`}>
            <time dateTime={new Date(e.created_at * 1000).toISOString()}>
              {new Date(e.created_at * 1000).toLocaleTimeString()}
            </time>
            {e.level !== "info" && <span class="level">{e.level}</span>}
            <span class="event-text">{e.message}</span>
          </li>
        ))}
      </ol>
      {visible.length > SHOWN && (
        <button type="button" onClick={() => setAll(!all)}>
          {all ? "Show fewer" : `Show all ${visible.length} events`}
        </button>
      )}
    </div>
  );
}
