// The validation report of a data file: errors and warnings with their lines, statistics of
// tokens and labels, and what training on it would cost.
import { duration, num } from "../format.js";
import { Empty, Facts, Panel } from "./ui.jsx";

function Issues({ issues, kind }) {
  if (!issues.length) return null;
  const shown = issues.slice(0, 200);
  return (
    <div class={`issues issues-${kind}`}>
      <h3>
        {issues.length} {kind === "error" ? "error" : "warning"}
        {issues.length === 1 ? "" : "s"}
      </h3>
      <table class="table compact">
        <thead>
          <tr>
            <th scope="col">File</th>
            <th scope="col" class="num">
              Line
            </th>
            <th scope="col">Field</th>
            <th scope="col">Problem</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((issue, i) => (
            <tr key={i}>
              <td class="mono">{issue.file}</td>
              <td class="num">{issue.line ?? "—"}</td>
              <td class="mono">{issue.field ?? "—"}</td>
              <td>{issue.message}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {issues.length > shown.length && (
        <p class="muted">…and {issues.length - shown.length} more.</p>
      )}
    </div>
  );
}

function Summary({ label, summary }) {
  if (!summary) return null;
  return [
    label,
    `min ${num(summary.min)} · median ${num(summary.p50)} · mean ${num(summary.mean)} · ` +
      `p95 ${num(summary.p95)} · max ${num(summary.max)}`,
  ];
}

function Labels({ distribution }) {
  const entries = Object.entries(distribution || {}).sort((a, b) => b[1] - a[1]);
  if (!entries.length) return null;
  const most = entries[0][1];
  const total = entries.reduce((sum, [, n]) => sum + n, 0);
  return (
    <div>
      <h3>Labels</h3>
      <table class="table compact labels">
        <thead>
          <tr>
            <th scope="col">Label</th>
            <th scope="col" class="num">
              Examples
            </th>
            <th scope="col" class="bar-col">
              Share
            </th>
          </tr>
        </thead>
        <tbody>
          {entries.map(([label, n]) => (
            <tr key={label}>
              <td class="mono">{label}</td>
              <td class="num">{n.toLocaleString()}</td>
              <td class="bar-col">
                <span class="bar" style={{ width: `${(100 * n) / most}%` }} />
                <span class="small">{((100 * n) / total).toFixed(1)}%</span>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function Stats({ stats, title }) {
  if (!stats) return null;
  const tokens = stats.tokens;
  return (
    <div class="stats">
      {title && <h3>{title}</h3>}
      <Facts
        items={[
          ["Examples", num(stats.n_examples)],
          ["Format", stats.format ?? "—"],
          tokens && ["Tokens per epoch", num(tokens.total)],
          Summary({ label: "Tokens per example", summary: tokens }),
          stats.n_target_tokens != null && ["Tokens trained on", num(stats.n_target_tokens)],
          stats.n_truncated != null && [
            "Truncated",
            `${num(stats.n_truncated)} (at ${num(stats.max_seq_length)} tokens)`,
          ],
          Summary({ label: "Messages per example", summary: stats.messages_per_example }),
        ]}
      />
      {!tokens && <p class="muted small">Pick a model to count tokens with its tokenizer.</p>}
      <Labels distribution={stats.label_distribution} />
    </div>
  );
}

export function Estimate({ estimate }) {
  if (!estimate) return null;
  return (
    <Facts
      items={[
        ["Epochs", num(estimate.n_epochs)],
        ["Batch size", num(estimate.batch_size)],
        ["Steps", num(estimate.steps)],
        ["Tokens to train", num(estimate.tokens_to_train)],
        [
          "Estimated time",
          estimate.seconds == null
            ? "unknown (pick a model)"
            : estimate.seconds < 60
              ? `under a minute on this server's ${estimate.device}`
              : `about ${duration(estimate.seconds)} on this server's ${estimate.device}`,
        ],
      ]}
    />
  );
}

export function ReportView({ body }) {
  const report = body.report;
  return (
    <>
      <Panel title="Validation" id="validation">
        <p class={report.ok ? "verdict good" : "verdict bad"} role="status">
          {report.ok
            ? `Ready to train: no errors${report.warnings.length ? `, ${report.warnings.length} warning(s)` : ""}.`
            : `${report.errors.length} error(s) to fix before training.`}
        </p>
        <Issues issues={report.errors} kind="error" />
        <Issues issues={report.warnings} kind="warning" />
        {!report.errors.length && !report.warnings.length && <Empty>No problems found.</Empty>}
      </Panel>
      <div class="grid-2">
        <Panel title="Statistics" id="statistics">
          <Stats stats={report.stats} />
          {report.validation_stats && (
            <Stats
              stats={report.validation_stats}
              title={`Validation file ${report.validation_file}`}
            />
          )}
        </Panel>
        <Panel title="Training with “auto” settings" id="estimate">
          {body.estimate ? (
            <Estimate estimate={body.estimate} />
          ) : (
            <Empty>No examples to train on.</Empty>
          )}
        </Panel>
      </div>
    </>
  );
}
