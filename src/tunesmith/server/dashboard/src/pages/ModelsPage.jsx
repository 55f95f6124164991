import { useState } from "preact/hooks";
import { api } from "../api.js";
import { isFineTuned, loadCatalog } from "../catalog.js";
import { ConfirmButton, Empty, ErrorNote, Loading, Page, Panel } from "../components/ui.jsx";
import { date } from "../format.js";
import { useAsync } from "../hooks.js";

export function ModelsPage() {
  const catalog = useAsync(loadCatalog, []);
  const [error, setError] = useState(null);
  const models = catalog.data?.models || [];
  const jobOf = (id) => catalog.data?.fineTuned.find((m) => m.id === id)?.job;

  async function remove(id) {
    setError(null);
    try {
      await api(`/models/${encodeURIComponent(id)}`, { method: "DELETE" });
      catalog.reload();
    } catch (err) {
      setError(err);
    }
  }

  return (
    <Page title="Models">
      <Panel>
        <ErrorNote error={catalog.error || error} />
        {catalog.loading && !catalog.data && <Loading />}
        {catalog.data && !models.length && <Empty>No models listed by this server.</Empty>}
        {models.length > 0 && (
          <table class="table" id="models-table">
            <thead>
              <tr>
                <th scope="col">Model</th>
                <th scope="col">Owner</th>
                <th scope="col">Created</th>
                <th scope="col">Job</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {models.map((m) => {
                const job = jobOf(m.id);
                return (
                  <tr key={m.id}>
                    <td class="mono wrap">{m.id}</td>
                    <td>{m.owned_by}</td>
                    <td>{date(m.created)}</td>
                    <td>
                      {job ? (
                        <a class="mono" href={`#/jobs/${job.id}`}>
                          {job.id}
                        </a>
                      ) : (
                        "—"
                      )}
                    </td>
                    <td>
                      <div class="actions">
                        <a href={`#/playground?model=${encodeURIComponent(m.id)}`}>Try</a>
                        {isFineTuned(m.id) && (
                          <ConfirmButton
                            label="Delete"
                            confirm={`Delete ${m.id}?`}
                            onConfirm={() => remove(m.id)}
                            busyLabel="Deleting"
                          />
                        )}
                      </div>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
      </Panel>
    </Page>
  );
}
