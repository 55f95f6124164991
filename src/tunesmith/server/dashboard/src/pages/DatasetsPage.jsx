import { useRef, useState } from "preact/hooks";
import { api } from "../api.js";
import { Empty, ErrorNote, Loading, Page, Panel, Status } from "../components/ui.jsx";
import { bytes, date } from "../format.js";
import { useApi } from "../hooks.js";
import { navigate } from "../router.js";

function UploadForm() {
  const input = useRef(null);
  const [file, setFile] = useState(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);

  async function submit(event) {
    event.preventDefault();
    if (!file) return;
    setBusy(true);
    setError(null);
    const form = new FormData();
    form.append("purpose", "fine-tune");
    form.append("file", file);
    try {
      const uploaded = await api("/files", { method: "POST", form });
      navigate(`/datasets/${uploaded.id}`);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  }

  return (
    <form class="upload" onSubmit={submit}>
      <label for="upload-file">Data file (JSONL or CSV)</label>
      <div class="row">
        <input
          id="upload-file"
          ref={input}
          type="file"
          accept=".jsonl,.json,.csv"
          aria-describedby="upload-hint"
          onChange={(e) => setFile(e.currentTarget.files[0] || null)}
        />
        <button type="submit" class="primary" disabled={!file || busy}>
          {busy ? "Uploading…" : "Upload"}
        </button>
      </div>
      <p id="upload-hint" class="muted small">
        Chat (<code>{'{"messages": [...]}'}</code>), completion (
        <code>{'{"prompt", "completion"}'}</code>) or classification (
        <code>{'{"text", "label"}'}</code>, or a CSV with <code>text,label</code> columns), one
        example per line. The file is checked as soon as it is uploaded.
      </p>
      <ErrorNote error={error} />
    </form>
  );
}

export function DatasetsPage() {
  const files = useApi("/files?purpose=fine-tune");
  const rows = files.data?.data || [];
  return (
    <Page title="Datasets">
      <Panel title="Upload a dataset" id="upload">
        <UploadForm />
      </Panel>
      <Panel title="Your datasets" id="datasets">
        <ErrorNote error={files.error} />
        {files.loading && !files.data && <Loading />}
        {files.data && !rows.length && <Empty>No datasets yet: upload one above.</Empty>}
        {rows.length > 0 && (
          <table class="table">
            <thead>
              <tr>
                <th scope="col">File</th>
                <th scope="col">ID</th>
                <th scope="col" class="num">
                  Size
                </th>
                <th scope="col">Uploaded</th>
                <th scope="col">Status</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((f) => (
                <tr key={f.id}>
                  <td>
                    <a href={`#/datasets/${f.id}`}>{f.filename}</a>
                  </td>
                  <td class="mono">{f.id}</td>
                  <td class="num">{bytes(f.bytes)}</td>
                  <td>{date(f.created_at)}</td>
                  <td>
                    <Status value={f.status} />
                    {f.deidentification && (
                      <span
                        class="deidentified"
                        title="De-identified while it streamed in: only the result is stored"
                      >
                        {" "}
                        de-identified ({f.deidentification.total} replaced)
                      </span>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Panel>
    </Page>
  );
}
