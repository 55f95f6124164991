// A succeeded job evaluated on its validation file: the metrics of the fine-tuned model
// beside its base's (chat and completion), confusion matrices, and a few examples.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { num } from "../format.js";
import { useApi, usePolling } from "../hooks.js";
import { ErrorNote, Loading } from "./ui.jsx";

function change(before, after, higherIsBetter) {
  if (typeof before !== "number" || typeof after !== "number") return null;
  const delta = after - before;
  if (!Number.isFinite(delta) || delta === 0) return <span>0</span>;
  const better = delta > 0 === higherIsBetter;
  const sign = delta > 0 ? "+" : "−";
  return (
    <span class={better ? "good-text" : "bad-text"}>
      {sign}
      {num(Math.abs(delta))} {better ? "(better)" : "(worse)"}
    </span>
  );
}

function MetricsTable({ sets, rows, baselineName, modelName }) {
  const hasBase = sets.some(([, , theirs]) => theirs);
  return (
    <table class="table compact" id="evaluation-metrics">
      <thead>
        <tr>
          <th scope="col">Metric</th>
          {hasBase && (
            <th scope="col" class="num">
              Base <span class="mono small">{baselineName}</span>
            </th>
          )}
          <th scope="col" class="num">
            Fine-tuned
          </th>
          {hasBase && (
            <th scope="col" class="num">
              Change
            </th>
          )}
        </tr>
      </thead>
      <tbody>
        {sets.flatMap(([prefix, mine, theirs]) =>
          rows
            .filter((r) => r.key in mine && !(r.key === "n_unparsed" && !prefix))
            .map((r) => (
              <tr key={prefix + r.key}>
                <th scope="row">
                  {prefix}
                  {r.label}
                </th>
                {hasBase && <td class="num">{num(theirs?.[r.key])}</td>}
                <td class="num">{num(mine[r.key])}</td>
                {hasBase && (
                  <td class="num">{change(theirs?.[r.key], mine[r.key], r.higher_is_better)}</td>
                )}
              </tr>
            )),
        )}
      </tbody>
    </table>
  );
}

function ConfusionMatrix({ title, confusion }) {
  const { labels, matrix } = confusion;
  const max = Math.max(1, ...matrix.flat());
  return (
    <figure class="confusion">
      <figcaption>{title}</figcaption>
      <table class="table compact matrix">
        <caption class="small muted">rows: true label · columns: predicted</caption>
        <thead>
          <tr>
            <th scope="col">true \ predicted</th>
            {labels.map((l) => (
              <th scope="col" key={l} class="num mono">
                {l}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {matrix.map((row, i) => (
            <tr key={labels[i]}>
              <th scope="row" class="mono">
                {labels[i]}
              </th>
              {row.map((n, j) => (
                <td
                  key={j}
                  class={`num cell ${i === j ? "diag" : "off"}`}
                  style={{ "--alpha": (n / max).toFixed(2) }}
                >
                  {n}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </figure>
  );
}

function confusionOf(metrics, answersKey) {
  return metrics?.confusion_matrix || metrics?.[answersKey]?.confusion_matrix || null;
}

function ReportView({ body }) {
  const report = body.report;
  const key = body.answers_key;
  const sets = [["", report.metrics, report.baseline_metrics]];
  if (report.metrics[key])
    sets.push(["answers: ", report.metrics[key], report.baseline_metrics?.[key]]);
  const mine = confusionOf(report.metrics, key);
  const theirs = confusionOf(report.baseline_metrics, key);
  const base = report.baseline_metrics != null;
  return (
    <div class="evaluation">
      <p class="muted">
        {report.task} evaluation on <span class="mono">{report.data}</span> ({report.n_examples}{" "}
        held-out examples)
      </p>
      <MetricsTable
        sets={sets}
        rows={body.metric_rows}
        baselineName={report.baseline}
        modelName={report.model}
      />
      {(mine || theirs) && (
        <div class="grid-2">
          {mine && <ConfusionMatrix title="Confusion matrix: fine-tuned" confusion={mine} />}
          {theirs && <ConfusionMatrix title="Confusion matrix: base" confusion={theirs} />}
        </div>
      )}
      {report.examples.length > 0 && (
        <>
          <h3>Examples</h3>
          <table class="table compact examples-table">
            <thead>
              <tr>
                <th scope="col">Input</th>
                <th scope="col">Reference</th>
                <th scope="col">Fine-tuned</th>
                {base && <th scope="col">Base</th>}
              </tr>
            </thead>
            <tbody>
              {report.examples.map((row, i) => (
                <tr key={i}>
                  <td class="clip">{row.input}</td>
                  <td>{row.reference}</td>
                  <td>{row.prediction}</td>
                  {base && <td>{row.baseline_prediction}</td>}
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      {report.notes.map((note) => (
        <p key={note} class="muted small">
          Note: {note}
        </p>
      ))}
    </div>
  );
}

export function Evaluation({ job }) {
  const path = `/fine_tuning/jobs/${job.id}/evaluation`;
  const status = useApi(path);
  const [error, setError] = useState(null);
  const state = status.data?.status;
  usePolling(status.reload, 2000, state === "running");

  if (!job.validation_file) {
    return (
      <p class="muted">
        This job has no validation file, so there are no held-out examples to evaluate on. Give a
        validation file when you start a fine-tune.
      </p>
    );
  }
  async function start() {
    setError(null);
    try {
      await api(path, { method: "POST" });
      status.reload();
    } catch (err) {
      setError(err);
    }
  }
  return (
    <div>
      <ErrorNote error={status.error || error} />
      {!status.data && <Loading />}
      {(state === "not_started" || state === "failed") && (
        <>
          {state === "failed" && <p class="error-note">Evaluation failed: {status.data.error}</p>}
          <p>
            Score the fine-tuned model on the validation file
            {job.method?.type === "classification" ? "" : ", beside its base model"}.
          </p>
          <button type="button" class="primary" onClick={start}>
            {state === "failed" ? "Try again" : "Evaluate"}
          </button>
        </>
      )}
      {state === "running" && (
        <p role="status" class="busy-text">
          Evaluating on the validation file…
        </p>
      )}
      {state === "succeeded" && <ReportView body={status.data} />}
    </div>
  );
}
