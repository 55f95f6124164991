// The new fine-tune form. As its fields change, the training file's report is asked for
// again (debounced): errors, the estimated time, and each "auto" hyperparameter resolved.
import { useEffect, useState } from "preact/hooks";
import { api } from "../api.js";
import { loadCatalog } from "../catalog.js";
import { Estimate } from "../components/Report.jsx";
import { ErrorNote, Loading, Page, Panel } from "../components/ui.jsx";
import { num } from "../format.js";
import { useApi, useAsync } from "../hooks.js";
import { navigate } from "../router.js";

// [name, label, kind, sent to the report endpoint]
const MAIN_HP = [
  ["n_epochs", "Epochs", "int", true],
  ["batch_size", "Batch size", "int", true],
  ["learning_rate_multiplier", "Learning rate multiplier", "float", true],
  ["max_seq_length", "Max sequence length", "int", true],
];
const MORE_HP = [
  ["learning_rate", "Learning rate (instead of the multiplier)", "float"],
  ["warmup_ratio", "Warm-up ratio", "float"],
  ["weight_decay", "Weight decay", "float"],
  ["lora_r", "LoRA rank", "int"],
  ["lora_alpha", "LoRA alpha", "int"],
  ["lora_dropout", "LoRA dropout", "float"],
  ["eval_every", "Validate every (steps)", "int"],
  ["checkpoint_every", "Checkpoint every (steps)", "int"],
  ["early_stopping_patience", "Early stopping patience", "int"],
];
const DEFAULTS = {
  warmup_ratio: 0.05,
  weight_decay: 0,
  lora_r: 8,
  lora_alpha: 16,
  lora_dropout: 0,
  early_stopping_patience: "off",
};

function parseValue(raw, kind) {
  const text = raw.trim();
  if (!text || text === "auto") return undefined;
  const value = kind === "int" ? Number.parseInt(text, 10) : Number.parseFloat(text);
  return Number.isFinite(value) ? value : undefined;
}

function HyperparameterField({ name, label, kind, value, onInput, resolved }) {
  const id = `hp-${name}`;
  const fallback = resolved?.[name] ?? DEFAULTS[name];
  const auto = !(name in DEFAULTS);
  const hint = value.trim()
    ? ""
    : auto
      ? fallback != null
        ? `auto → ${num(fallback)}`
        : "auto"
      : `default ${num(fallback)}`;
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <input
        id={id}
        name={name}
        type="text"
        inputmode={kind === "int" ? "numeric" : "decimal"}
        placeholder={auto ? "auto" : String(fallback)}
        value={value}
        aria-describedby={`${id}-hint`}
        onInput={(e) => onInput(name, e.currentTarget.value)}
      />
      <span id={`${id}-hint`} class="hint" aria-live="polite">
        {hint}
      </span>
    </div>
  );
}

function useDebounced(value, ms) {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setSettled(value), ms);
    return () => clearTimeout(timer);
  }, [value, ms]);
  return settled;
}

export function NewJobPage({ query }) {
  const files = useApi("/files?purpose=fine-tune");
  const catalog = useAsync(loadCatalog, []);
  const [model, setModel] = useState(query.get("model") || "");
  const [train, setTrain] = useState(query.get("training_file") || "");
  const [valid, setValid] = useState("");
  const [task, setTask] = useState(null); // null: follow the data's format
  const [method, setMethod] = useState("lora");
  const [hp, setHp] = useState({});
  const [suffix, setSuffix] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const fileList = files.data?.data || [];
  const bases = catalog.data?.bases || [];

  // Defaults fill only fields still empty when the lists arrive: the functional update sees
  // what the user typed meanwhile (a closure's `model` could be a render old and overwrite it).
  useEffect(() => {
    if (bases.length) setModel((typed) => typed || catalog.data.recentBases[0] || bases[0]);
  }, [catalog.data]);
  useEffect(() => {
    if (fileList.length) setTrain((chosen) => chosen || fileList[0].id);
  }, [files.data]);

  const params = new URLSearchParams({ method });
  if (model.trim()) params.set("model", model.trim());
  if (valid) params.set("validation_file", valid);
  for (const [name, , kind, sent] of MAIN_HP) {
    const value = parseValue(hp[name] || "", kind);
    if (sent && value !== undefined) params.set(name, String(value));
  }
  const reportPath = useDebounced(train ? `/files/${train}/validation?${params}` : null, 400);
  const report = useApi(reportPath);
  const body = report.data;
  const format = body?.report?.format;
  const effectiveTask = task ?? (format === "classification" ? "classification" : "supervised");
  const resolved = body?.resolved;
  const ok = body ? body.report.ok && !body.problems.length : true;

  const setField = (name, value) => setHp((old) => ({ ...old, [name]: value }));

  async function submit(event) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const hyperparameters = {};
    for (const [name, , kind] of [...MAIN_HP, ...MORE_HP]) {
      const value = parseValue(hp[name] || "", kind);
      if (value !== undefined) hyperparameters[name] = value;
    }
    const request = {
      model: model.trim(),
      training_file: train,
      validation_file: valid || undefined,
      suffix: suffix.trim() || undefined,
      method: {
        type: effectiveTask,
        [effectiveTask]: { training_method: method, hyperparameters },
      },
    };
    try {
      const job = await api("/fine_tuning/jobs", { method: "POST", body: request });
      navigate(`/jobs/${job.id}`);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  }

  return (
    <Page title="New fine-tune">
      <p class="breadcrumbs">
        <a href="#/jobs">Fine-tuning</a> / new
      </p>
      <form class="new-job" onSubmit={submit}>
        <div class="grid-2">
          <Panel title="Model and data" id="model-and-data">
            <div class="field">
              <label for="base-model">Base model</label>
              <input
                id="base-model"
                list="base-models"
                required
                value={model}
                aria-describedby="base-model-hint"
                onInput={(e) => setModel(e.currentTarget.value)}
              />
              <datalist id="base-models">
                {bases.map((id) => (
                  <option key={id} value={id} />
                ))}
              </datalist>
              <span id="base-model-hint" class="hint">
                A packaged model id, a model folder on the server, or a cached hub id.
              </span>
            </div>
            <div class="field">
              <label for="training-file">Training file</label>
              <select
                id="training-file"
                required
                value={train}
                onChange={(e) => setTrain(e.currentTarget.value)}
              >
                {!fileList.length && <option value="">no datasets uploaded</option>}
                {fileList.map((f) => (
                  <option key={f.id} value={f.id}>
                    {f.filename} ({f.id})
                  </option>
                ))}
              </select>
            </div>
            <div class="field">
              <label for="validation-file">Validation file (optional)</label>
              <select
                id="validation-file"
                value={valid}
                onChange={(e) => setValid(e.currentTarget.value)}
              >
                <option value="">none</option>
                {fileList
                  .filter((f) => f.id !== train)
                  .map((f) => (
                    <option key={f.id} value={f.id}>
                      {f.filename} ({f.id})
                    </option>
                  ))}
              </select>
            </div>
            <fieldset class="field">
              <legend>Task</legend>
              {[
                ["supervised", "Chat or completion (supervised)"],
                ["classification", "Classification"],
              ].map(([value, label]) => (
                <label key={value} class="choice">
                  <input
                    type="radio"
                    name="task"
                    value={value}
                    checked={effectiveTask === value}
                    onChange={() => setTask(value)}
                  />
                  {label}
                </label>
              ))}
              {format && <span class="hint">The training file holds {format} data.</span>}
            </fieldset>
            <div class="field">
              <label for="training-method">Method</label>
              <select
                id="training-method"
                value={method}
                onChange={(e) => setMethod(e.currentTarget.value)}
              >
                <option value="lora">LoRA (small adapter, fast)</option>
                <option value="full">Full fine-tune (all weights)</option>
                <option value="head">Head (top layers only)</option>
              </select>
            </div>
            <div class="field">
              <label for="suffix">Suffix (optional, in the model's name)</label>
              <input
                id="suffix"
                pattern="[A-Za-z0-9._\-]*"
                maxLength={64}
                value={suffix}
                onInput={(e) => setSuffix(e.currentTarget.value)}
              />
            </div>
          </Panel>
          <Panel title="Hyperparameters" id="hyperparameters">
            <p class="muted small">
              Leave a field empty for “auto”; what auto becomes is shown beside it.
            </p>
            <div class="hp-grid">
              {MAIN_HP.map(([name, label, kind]) => (
                <HyperparameterField
                  key={name}
                  {...{ name, label, kind, resolved }}
                  value={hp[name] || ""}
                  onInput={setField}
                />
              ))}
              <div class="field">
                <span class="label">Learning rate</span>
                <span class="value mono" id="resolved-learning-rate">
                  {resolved ? num(resolved.learning_rate) : "—"}
                </span>
              </div>
            </div>
            <details>
              <summary>More hyperparameters</summary>
              <div class="hp-grid">
                {MORE_HP.map(([name, label, kind]) => (
                  <HyperparameterField
                    key={name}
                    {...{ name, label, kind, resolved }}
                    value={hp[name] || ""}
                    onInput={setField}
                  />
                ))}
              </div>
            </details>
          </Panel>
        </div>
        <Panel title="Estimate" id="estimate">
          {!train && <p class="muted">Upload a dataset first.</p>}
          {report.loading && <Loading what="Checking the data and estimating" />}
          <ErrorNote error={report.error} />
          {body && <Estimate estimate={body.estimate} />}
          {body && !body.report.ok && (
            <p class="error-note" role="alert">
              The training file has {body.report.errors.length} error(s):{" "}
              <a href={`#/datasets/${train}`}>see the report</a>.
            </p>
          )}
          {body?.problems?.map((p) => (
            <p key={p} class="error-note" role="alert">
              {p}
            </p>
          ))}
        </Panel>
        <ErrorNote error={error} />
        <div class="form-actions">
          <button type="submit" class="primary" disabled={busy || !train || !model.trim() || !ok}>
            {busy ? "Starting…" : "Start fine-tune"}
          </button>
          <a href="#/jobs">Cancel</a>
        </div>
      </form>
    </Page>
  );
}
