// Chat with a fine-tuned model and another model (by default its base) side by side: each
// message goes to both, and both replies stream in (chat completions with stream: true).
import { useEffect, useRef, useState } from "preact/hooks";
import { streamChat } from "../api.js";
import { isFineTuned, loadCatalog } from "../catalog.js";
import { Classifier } from "../components/Classifier.jsx";
import { ErrorNote, Loading, Page, Panel } from "../components/ui.jsx";
import { useAsync } from "../hooks.js";
import { navigate } from "../router.js";

const SIDES = ["left", "right"];

function ModelSelect({ id, label, value, onChange, options }) {
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <select id={id} value={value} onChange={(e) => onChange(e.currentTarget.value)}>
        {!options.some(([v]) => v === value) && value && <option value={value}>{value}</option>}
        {options.map(([v, text]) => (
          <option key={v} value={v}>
            {text}
          </option>
        ))}
      </select>
    </div>
  );
}

function Conversation({ id, title, model, turns, busy, error }) {
  const end = useRef(null);
  useEffect(() => end.current?.scrollIntoView({ block: "nearest" }), [turns]);
  return (
    <Panel title={title} id={id}>
      <p class="mono small muted wrap">{model || "no model chosen"}</p>
      <ol class="chat" aria-live="polite" aria-busy={busy ? "true" : "false"}>
        {turns.map((turn, i) => (
          <li key={i} class={`bubble ${turn.role}`}>
            <span class="sr-only">{turn.role === "user" ? "You" : "Model"}: </span>
            {turn.content || (busy && i === turns.length - 1 ? "…" : "")}
          </li>
        ))}
        <li ref={end} class="chat-end" aria-hidden="true" />
      </ol>
      <ErrorNote error={error} />
    </Panel>
  );
}

const empty = () => ({ turns: [], busy: false, error: null });

export function PlaygroundPage({ query }) {
  const catalog = useAsync(loadCatalog, []);
  const [models, setModels] = useState({ left: query.get("model") || "", right: "" });
  const [sides, setSides] = useState({ left: empty(), right: empty() });
  const [system, setSystem] = useState("");
  const [temperature, setTemperature] = useState("0.7");
  const [maxTokens, setMaxTokens] = useState("256");
  const [message, setMessage] = useState("");
  const aborts = useRef([]);

  const fineTuned = catalog.data?.fineTuned || [];
  const entry = (id) => fineTuned.find((m) => m.id === id);
  const isClassifier = (id) => entry(id)?.job?.method?.type === "classification";
  const baseOf = (id) => (isClassifier(id) ? "" : entry(id)?.base || "");

  useEffect(() => {
    if (!catalog.data) return;
    setModels((chosen) => {
      const left = chosen.left || fineTuned[0]?.id || catalog.data.bases[0] || "";
      const fallback = isClassifier(left) ? "" : catalog.data.bases[0] || "";
      return { left, right: chosen.right || baseOf(left) || fallback };
    });
  }, [catalog.data]);

  const options = catalog.data
    ? [
        ...fineTuned.map((m) => [m.id, m.id]),
        ...catalog.data.bases.filter((id) => !isFineTuned(id)).map((id) => [id, `${id} (base)`]),
      ]
    : [];
  const busy = SIDES.some((s) => sides[s].busy);
  const classifying = isClassifier(models.left);
  const rightOptions = classifying
    ? [["", "none"], ...fineTuned.filter((m) => isClassifier(m.id)).map((m) => [m.id, m.id])]
    : options;

  function chooseLeft(id) {
    setModels({ left: id, right: isClassifier(id) ? "" : baseOf(id) || models.right });
    navigate(`/playground?model=${encodeURIComponent(id)}`);
  }

  function update(side, change) {
    setSides((old) => ({ ...old, [side]: { ...old[side], ...change(old[side]) } }));
  }

  async function ask(side, history, signal) {
    const messages = [
      ...(system.trim() ? [{ role: "system", content: system.trim() }] : []),
      ...history,
    ];
    update(side, (s) => ({
      turns: [...history, { role: "assistant", content: "" }],
      busy: true,
      error: null,
    }));
    try {
      await streamChat(
        {
          model: models[side],
          messages,
          temperature: Number.parseFloat(temperature) || 0,
          max_tokens: Number.parseInt(maxTokens, 10) || 256,
        },
        (delta) =>
          update(side, (s) => {
            const turns = s.turns.slice();
            const last = turns[turns.length - 1];
            turns[turns.length - 1] = { ...last, content: last.content + delta };
            return { turns };
          }),
        signal,
      );
      update(side, () => ({ busy: false }));
    } catch (error) {
      update(side, () => ({ busy: false, error: error.name === "AbortError" ? null : error }));
    }
  }

  function send(event) {
    event?.preventDefault();
    const text = message.trim();
    if (!text || busy) return;
    setMessage("");
    aborts.current = SIDES.map(() => new AbortController());
    SIDES.forEach((side, i) => {
      if (!models[side]) return;
      const history = [
        ...sides[side].turns.filter((t) => t.content),
        { role: "user", content: text },
      ];
      ask(side, history, aborts.current[i].signal);
    });
  }

  return (
    <Page title="Playground">
      {catalog.loading && !catalog.data && <Loading />}
      <ErrorNote error={catalog.error} />
      <div class="playground">
        <div class="grid-2">
          <ModelSelect
            id="model-left"
            label="Model"
            value={models.left}
            onChange={chooseLeft}
            options={options}
          />
          <ModelSelect
            id="model-right"
            label="Compare with"
            value={models.right}
            onChange={(id) => setModels({ ...models, right: id })}
            options={rightOptions}
          />
        </div>
        {classifying && <Classifier models={models} />}
        {!classifying && (
          <form onSubmit={send}>
            <details class="settings">
              <summary>Settings</summary>
              <div class="hp-grid">
                <div class="field wide">
                  <label for="system-prompt">System prompt (optional)</label>
                  <textarea
                    id="system-prompt"
                    rows={2}
                    value={system}
                    onInput={(e) => setSystem(e.currentTarget.value)}
                  />
                </div>
                <div class="field">
                  <label for="temperature">Temperature</label>
                  <input
                    id="temperature"
                    type="number"
                    min="0"
                    max="2"
                    step="0.1"
                    value={temperature}
                    onInput={(e) => setTemperature(e.currentTarget.value)}
                  />
                </div>
                <div class="field">
                  <label for="max-tokens">Max tokens</label>
                  <input
                    id="max-tokens"
                    type="number"
                    min="1"
                    max="4096"
                    value={maxTokens}
                    onInput={(e) => setMaxTokens(e.currentTarget.value)}
                  />
                </div>
              </div>
            </details>
            <div class="grid-2 conversations">
              <Conversation
                id="chat-left"
                title={isFineTuned(models.left) ? "Fine-tuned" : "Model"}
                model={models.left}
                {...sides.left}
              />
              <Conversation
                id="chat-right"
                title={models.right && models.right === baseOf(models.left) ? "Base" : "Comparison"}
                model={models.right}
                {...sides.right}
              />
            </div>
            <div class="composer">
              <label for="message">Message</label>
              <textarea
                id="message"
                rows={3}
                value={message}
                aria-describedby="message-hint"
                onInput={(e) => setMessage(e.currentTarget.value)}
                onKeyDown={(e) => {
                  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) send(e);
                }}
              />
              <span id="message-hint" class="hint">
                Sent to both models. Ctrl+Enter sends.
              </span>
              <div class="row">
                <button
                  type="submit"
                  class="primary"
                  disabled={busy || !message.trim() || !models.left}
                >
                  Send
                </button>
                {busy && (
                  <button type="button" onClick={() => aborts.current.forEach((a) => a.abort())}>
                    Stop
                  </button>
                )}
                <button
                  type="button"
                  disabled={busy}
                  onClick={() => setSides({ left: empty(), right: empty() })}
                >
                  New chat
                </button>
              </div>
            </div>
          </form>
        )}
      </div>
    </Page>
  );
}
