// The playground for classifiers: a text goes to /v1/classifications on one or two models,
// and each shows its predicted label and every label's probability.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { percent } from "../format.js";
import { ErrorNote, Panel } from "./ui.jsx";

function Result({ id, title, model, result, error }) {
  return (
    <Panel title={title} id={id}>
      <p class="mono small muted wrap">{model || "no model chosen"}</p>
      <ErrorNote error={error} />
      {result && (
        <div aria-live="polite">
          <p class="predicted">
            {Array.isArray(result.label) ? result.label.join(", ") || "(no label)" : result.label}
          </p>
          <ul class="probabilities" aria-label="Probability of each label">
            {Object.entries(result.probabilities).map(([label, p]) => (
              <li key={label}>
                <span class="mono">{label}</span>
                <span class="bar" style={{ width: `${Math.max(1, p * 100)}%` }} />
                <span class="num">{percent(p)}</span>
              </li>
            ))}
          </ul>
        </div>
      )}
    </Panel>
  );
}

export function Classifier({ models }) {
  const [text, setText] = useState("");
  const [results, setResults] = useState({});
  const [busy, setBusy] = useState(false);

  async function classify(event) {
    event.preventDefault();
    setBusy(true);
    const entries = await Promise.all(
      Object.entries(models)
        .filter(([, model]) => model)
        .map(async ([side, model]) => {
          try {
            const answer = await api("/classifications", {
              method: "POST",
              body: { model, input: text },
            });
            return [side, { result: answer.data[0], error: null }];
          } catch (error) {
            return [side, { result: null, error }];
          }
        }),
    );
    setResults(Object.fromEntries(entries));
    setBusy(false);
  }

  return (
    <form onSubmit={classify}>
      <div class="field">
        <label for="classify-text">Text to classify</label>
        <textarea
          id="classify-text"
          rows={3}
          value={text}
          onInput={(e) => setText(e.currentTarget.value)}
        />
      </div>
      <button type="submit" class="primary" disabled={busy || !text.trim()}>
        {busy ? "Classifying…" : "Classify"}
      </button>
      <div class="grid-2 conversations">
        <Result id="chat-left" title="Model" model={models.left} {...results.left} />
        <Result id="chat-right" title="Comparison" model={models.right} {...results.right} />
      </div>
    </form>
  );
}
