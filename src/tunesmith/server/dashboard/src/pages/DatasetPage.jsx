import { useEffect, useState } from "preact/hooks";
import { api } from "../api.js";
import { loadCatalog } from "../catalog.js";
import { Examples } from "../components/Examples.jsx";
import { ReportView } from "../components/Report.jsx";
import {
  ConfirmButton,
  ErrorNote,
  Facts,
  Loading,
  Page,
  Panel,
  Status,
} from "../components/ui.jsx";
import { bytes, date } from "../format.js";
import { useApi, useAsync } from "../hooks.js";
import { navigate } from "../router.js";

const MODEL_KEY = "tunesmith.reportModel";

function ModelPicker({ value, onChange, bases }) {
  const [text, setText] = useState(value);
  // the chosen model arrives with the catalog: keep anything typed before it did
  useEffect(() => setText((typed) => typed || value), [value]);
  return (
    <form
      class="field inline"
      onSubmit={(e) => {
        e.preventDefault();
        onChange(text.trim());
      }}
    >
      <label for="report-model">Count tokens with the tokenizer of</label>
      <input
        id="report-model"
        list="report-models"
        placeholder="no model (structure only)"
        value={text}
        onInput={(e) => setText(e.currentTarget.value)}
      />
      <datalist id="report-models">
        {bases.map((id) => (
          <option key={id} value={id} />
        ))}
      </datalist>
      <button type="submit">Check</button>
    </form>
  );
}

export function DatasetPage({ id }) {
  const file = useApi(`/files/${id}`);
  const catalog = useAsync(loadCatalog, []);
  const bases = catalog.data?.bases || [];
  const [model, setModel] = useState(null);
  useEffect(() => {
    if (model !== null || !catalog.data) return;
    const remembered = localStorage.getItem(MODEL_KEY);
    setModel(bases.includes(remembered) ? remembered : catalog.data.recentBases[0] || "");
  }, [catalog.data]);
  const query = model ? `?model=${encodeURIComponent(model)}` : "";
  const report = useApi(model === null ? null : `/files/${id}/validation${query}`);
  const [deleteError, setDeleteError] = useState(null);

  function pick(value) {
    localStorage.setItem(MODEL_KEY, value);
    setModel(value);
  }

  async function remove() {
    try {
      await api(`/files/${id}`, { method: "DELETE" });
      navigate("/datasets");
    } catch (err) {
      setDeleteError(err);
    }
  }

  const f = file.data;
  return (
    <Page
      title={f ? f.filename : "Dataset"}
      actions={
        <>
          <a class="button primary" href={`#/jobs/new?training_file=${id}`}>
            Fine-tune on this file
          </a>
          <ConfirmButton
            label="Delete"
            confirm="Delete this file?"
            onConfirm={remove}
            busyLabel="Deleting"
          />
        </>
      }
    >
      <p class="breadcrumbs">
        <a href="#/datasets">Datasets</a> / <span class="mono">{id}</span>
      </p>
      <ErrorNote error={file.error || deleteError} />
      {f && (
        <Facts
          items={[
            ["File ID", <span class="mono">{f.id}</span>],
            ["Size", bytes(f.bytes)],
            ["Uploaded", date(f.created_at)],
            ["Status", <Status value={f.status} />],
          ]}
        />
      )}
      <div class="toolbar">
        <ModelPicker value={model ?? ""} onChange={pick} bases={bases} />
        {report.loading && (
          <span class="muted" role="status">
            Checking the file…
          </span>
        )}
      </div>
      <ErrorNote error={report.error} />
      {report.data ? (
        <ReportView body={report.data} />
      ) : (
        report.loading && <Loading what="Validating" />
      )}
      <Panel title="Examples" id="examples">
        <Examples fileId={id} />
      </Panel>
    </Page>
  );
}
