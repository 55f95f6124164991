// A line chart of one metric per step (training and validation), drawn by Chart.js. The
// chart is created once and its data replaced in place as new metrics events arrive, so it
// updates while a job runs without flicker.
import {
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
} from "chart.js";
import { useEffect, useRef } from "preact/hooks";
import { num } from "../format.js";

Chart.register(
  LineController,
  LineElement,
  PointElement,
  LinearScale,
  CategoryScale,
  Legend,
  Tooltip,
);

const COLORS = { train: "#3b5bdb", valid: "#e8590c" };

function describe(title, series) {
  const parts = series
    .filter((s) => s.points.length)
    .map((s) => {
      const last = s.points[s.points.length - 1];
      return `${s.label} ${num(last.y)} at step ${last.x}`;
    });
  return parts.length ? `${title}: latest ${parts.join("; ")}` : `${title}: no data yet`;
}

/** series: [{ key: "train" | "valid", label, points: [{x: step, y}] }] */
export function MetricChart({ title, series, yLabel, id }) {
  const canvas = useRef(null);
  const chart = useRef(null);

  useEffect(() => {
    chart.current = new Chart(canvas.current, {
      type: "line",
      data: { datasets: [] },
      options: {
        animation: false,
        maintainAspectRatio: false,
        parsing: false,
        normalized: true,
        interaction: { mode: "nearest", axis: "x", intersect: false },
        scales: {
          x: { type: "linear", title: { display: true, text: "step" }, ticks: { precision: 0 } },
          y: { title: { display: true, text: yLabel } },
        },
        plugins: { legend: { position: "bottom" } },
      },
    });
    return () => chart.current.destroy();
  }, []);

  useEffect(() => {
    const c = chart.current;
    c.data.datasets = series.map((s) => ({
      label: s.label,
      data: s.points,
      borderColor: COLORS[s.key],
      backgroundColor: COLORS[s.key],
      borderWidth: 2,
      pointRadius: s.key === "valid" || s.points.length < 30 ? 3 : 0,
      tension: 0.2,
    }));
    c.update("none");
  }, [series]);

  const summary = describe(title, series);
  return (
    <figure class="chart" id={id}>
      <figcaption>{title}</figcaption>
      <div class="chart-box">
        <canvas ref={canvas} role="img" aria-label={summary} />
      </div>
      <p class="sr-only" aria-live="polite">
        {summary}
      </p>
    </figure>
  );
}
