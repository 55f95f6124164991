import { date, num, percent } from "../format.js";
import { useApi } from "../hooks.js";
import { Empty } from "./ui.jsx";

export function Checkpoints({ checkpoints }) {
  // the engine keeps the newest checkpoints' weights only: those are the ones /v1/models lists
  const models = useApi(checkpoints.length ? "/models" : null, [checkpoints.length]);
  const available = new Set((models.data?.data || []).map((m) => m.id));
  if (!checkpoints.length) return <Empty>No checkpoints yet.</Empty>;
  return (
    <table class="table compact" id="checkpoints-table">
      <thead>
        <tr>
          <th scope="col" class="num">
            Step
          </th>
          <th scope="col">Model</th>
          <th scope="col" class="num">
            Training loss
          </th>
          <th scope="col" class="num">
            Validation loss
          </th>
          <th scope="col" class="num">
            Validation accuracy
          </th>
          <th scope="col">Saved</th>
          <th scope="col">
            <span class="sr-only">Actions</span>
          </th>
        </tr>
      </thead>
      <tbody>
        {checkpoints.map((c) => (
          <tr key={c.id}>
            <td class="num">{c.step_number}</td>
            <td class="mono wrap">{c.fine_tuned_model_checkpoint}</td>
            <td class="num">{num(c.metrics.train_loss)}</td>
            <td class="num">{num(c.metrics.valid_loss)}</td>
            <td class="num">{percent(c.metrics.valid_mean_token_accuracy)}</td>
            <td>{date(c.created_at)}</td>
            <td>
              {available.has(c.fine_tuned_model_checkpoint) ? (
                <a href={`#/playground?model=${encodeURIComponent(c.fine_tuned_model_checkpoint)}`}>
                  Try
                </a>
              ) : (
                <span class="muted small" title="Only the newest checkpoints keep their weights">
                  removed
                </span>
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
