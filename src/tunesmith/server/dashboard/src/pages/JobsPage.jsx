import { listAll } from "../api.js";
import { Empty, ErrorNote, Loading, Page, Panel, Status } from "../components/ui.jsx";
import { date, duration } from "../format.js";
import { useAsync, usePolling } from "../hooks.js";
import { isFinal, jobDuration, jobTask } from "../jobs.js";

export function JobsPage() {
  const jobs = useAsync(() => listAll("/fine_tuning/jobs"), []);
  const rows = jobs.data || [];
  usePolling(
    jobs.reload,
    3000,
    rows.some((job) => !isFinal(job)),
  );
  return (
    <Page
      title="Fine-tuning jobs"
      actions={
        <a class="button primary" href="#/jobs/new">
          New fine-tune
        </a>
      }
    >
      <Panel>
        <ErrorNote error={jobs.error} />
        {jobs.loading && !jobs.data && <Loading />}
        {jobs.data && !rows.length && (
          <Empty>
            No fine-tuning jobs yet. <a href="#/datasets">Upload a dataset</a>, then{" "}
            <a href="#/jobs/new">start a fine-tune</a>.
          </Empty>
        )}
        {rows.length > 0 && (
          <table class="table" id="jobs-table">
            <thead>
              <tr>
                <th scope="col">Job</th>
                <th scope="col">Status</th>
                <th scope="col">Base model</th>
                <th scope="col">Fine-tuned model</th>
                <th scope="col">Task</th>
                <th scope="col">Created</th>
                <th scope="col" class="num">
                  Duration
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map((job) => (
                <tr key={job.id}>
                  <td>
                    <a href={`#/jobs/${job.id}`} class="mono">
                      {job.id}
                    </a>
                  </td>
                  <td>
                    <Status value={job.status} />
                  </td>
                  <td class="mono wrap">{job.model}</td>
                  <td class="mono wrap">{job.fine_tuned_model || "—"}</td>
                  <td>{jobTask(job)}</td>
                  <td>{date(job.created_at)}</td>
                  <td class="num">{duration(jobDuration(job))}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Panel>
    </Page>
  );
}
