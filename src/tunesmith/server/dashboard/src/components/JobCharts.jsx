// Loss and accuracy per step, training and validation, from the job's metrics events.
import { useMemo } from "preact/hooks";
import { MetricChart } from "./MetricChart.jsx";

function points(metrics, key) {
  return metrics.filter((m) => m[key] != null).map((m) => ({ x: m.step, y: m[key] }));
}

export function JobCharts({ metrics, classification }) {
  const loss = useMemo(
    () => [
      { key: "train", label: "training loss", points: points(metrics, "train_loss") },
      { key: "valid", label: "validation loss", points: points(metrics, "valid_loss") },
    ],
    [metrics],
  );
  const accuracyName = classification ? "accuracy" : "token accuracy";
  const accuracy = useMemo(
    () => [
      {
        key: "train",
        label: `training ${accuracyName}`,
        points: points(metrics, "train_mean_token_accuracy"),
      },
      {
        key: "valid",
        label: `validation ${accuracyName}`,
        points: points(metrics, "valid_mean_token_accuracy"),
      },
    ],
    [metrics],
  );
  return (
    <div class="grid-2 charts">
      <MetricChart id="loss-chart" title="Loss" yLabel="loss" series={loss} />
      <MetricChart
        id="accuracy-chart"
        title={accuracyName[0].toUpperCase() + accuracyName.slice(1)}
        yLabel={accuracyName}
        series={accuracy}
      />
    </div>
  );
}
