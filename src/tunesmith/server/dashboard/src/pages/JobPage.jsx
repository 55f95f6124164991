// One fine-tuning job: live status and progress, loss/accuracy charts, checkpoints,
// evaluation, result files and the events log. Polls every 2 s until the job is final.
import { useEffect, useMemo, useState } from "preact/hooks";
import { api, download, listAll } from "../api.js";
import { Checkpoints } from "../components/Checkpoints.jsx";
import { Evaluation } from "../components/Evaluation.jsx";
import { JobCharts } from "../components/JobCharts.jsx";
import { JobEvents } from "../components/JobEvents.jsx";
import {
  ConfirmButton,
  ErrorNote,
  Facts,
  Loading,
  Page,
  Panel,
  Status,
} from "../components/ui.jsx";
import { date, duration, now, num } from "../format.js";
import { useAsync, usePolling } from "../hooks.js";
import { metricsByStep, totalSteps, useJobEvents } from "../jobEvents.js";
import { isDeidentified, isFinal, jobDuration, jobTask, trainingMethod } from "../jobs.js";

const POLL_MS = 2000;

function Progress({ job, metrics, total }) {
  const last = metrics[metrics.length - 1];
  const step = job.status === "succeeded" ? (total ?? last?.step) : last?.step;
  const eta =
    job.estimated_finish && job.status === "running" ? job.estimated_finish - now() : null;
  if (!total && !step) {
    const waiting = {
      validating_files: "Validating the files…",
      queued: "Queued: waiting for a worker…",
      paused: "Paused.",
    }[job.status];
    return waiting ? <p role="status">{waiting}</p> : null;
  }
  const share = total ? Math.min(1, (step || 0) / total) : 0;
  return (
    <div class="progress-block">
      <label for="job-progress">
        Step {step ?? 0} of {total ?? "?"} ({Math.round(share * 100)}%)
        {last?.epoch != null && ` · epoch ${num(last.epoch, 3)}`}
        {eta != null && ` · about ${duration(eta)} left`}
      </label>
      <progress id="job-progress" max={total || 1} value={step || 0}>
        {Math.round(share * 100)}%
      </progress>
    </div>
  );
}

function ResultFiles({ ids }) {
  const files = useAsync(() => Promise.all(ids.map((id) => api(`/files/${id}`))), [ids.join()]);
  const [error, setError] = useState(null);
  if (!ids.length)
    return <p class="muted">None yet: a succeeded job has its step metrics as a CSV file.</p>;
  return (
    <div>
      <ErrorNote error={files.error || error} />
      <ul class="plain">
        {(files.data || []).map((f) => (
          <li key={f.id}>
            <button type="button" onClick={() => download(f.id, f.filename).catch(setError)}>
              Download {f.filename}
            </button>{" "}
            <span class="mono small muted">{f.id}</span>
          </li>
        ))}
      </ul>
    </div>
  );
}

function Actions({ job, onChange }) {
  const [error, setError] = useState(null);
  const act = (action) => async () => {
    setError(null);
    try {
      onChange(await api(`/fine_tuning/jobs/${job.id}/${action}`, { method: "POST" }));
    } catch (err) {
      setError(err);
    }
  };
  const canPause = job.status === "running" || job.status === "queued";
  return (
    <>
      {canPause && (
        <button type="button" onClick={act("pause")}>
          Pause
        </button>
      )}
      {job.status === "paused" && (
        <button type="button" class="primary" onClick={act("resume")}>
          Resume
        </button>
      )}
      {!isFinal(job) && (
        <ConfirmButton
          label="Cancel job"
          confirm="Cancel this job?"
          onConfirm={act("cancel")}
          busyLabel="Cancelling"
        />
      )}
      {job.fine_tuned_model && (
        <a
          class="button primary"
          href={`#/playground?model=${encodeURIComponent(job.fine_tuned_model)}`}
        >
          Open in playground
        </a>
      )}
      <ErrorNote error={error} />
    </>
  );
}

export function JobPage({ id }) {
  const [job, setJob] = useState(null);
  const [error, setError] = useState(null);
  const [checkpoints, setCheckpoints] = useState([]);
  const { events, refresh } = useJobEvents(id);

  async function poll() {
    try {
      const [fresh, saved] = await Promise.all([
        api(`/fine_tuning/jobs/${id}`),
        listAll(`/fine_tuning/jobs/${id}/checkpoints`),
        refresh(),
      ]);
      setJob(fresh);
      setCheckpoints(saved);
      setError(null);
    } catch (err) {
      setError(err);
    }
  }
  useEffect(() => {
    poll();
  }, [id]);
  usePolling(poll, POLL_MS, job != null && !isFinal(job));

  const metrics = useMemo(() => metricsByStep(events), [events]);
  const total = totalSteps(events, metrics);
  const classification = job?.method?.type === "classification";

  return (
    <Page
      title={job ? `Job ${job.id}` : "Job"}
      actions={
        job && (
          <Actions
            job={job}
            onChange={(j) => {
              setJob(j);
              poll();
            }}
          />
        )
      }
    >
      <p class="breadcrumbs">
        <a href="#/jobs">Fine-tuning</a> / <span class="mono">{id}</span>
      </p>
      <ErrorNote error={error} />
      {!job && !error && <Loading />}
      {job && (
        <>
          <div class="status-line" aria-live="polite">
            <Status value={job.status} />
            <Progress job={job} metrics={metrics} total={total} />
          </div>
          {job.error && (
            <p class="error-note" role="alert">
              {job.error.message}
            </p>
          )}
          <Facts
            items={[
              ["Base model", <span class="mono">{job.model}</span>],
              ["Fine-tuned model", <span class="mono">{job.fine_tuned_model || "—"}</span>],
              ["Task", jobTask(job)],
              ["Method", trainingMethod(job)],
              [
                "De-identified",
                isDeidentified(job)
                  ? "yes: trains only on files de-identified as they were uploaded"
                  : "no",
              ],
              [
                "Training file",
                <a class="mono" href={`#/datasets/${job.training_file}`}>
                  {job.training_file}
                </a>,
              ],
              [
                "Validation file",
                job.validation_file ? (
                  <a class="mono" href={`#/datasets/${job.validation_file}`}>
                    {job.validation_file}
                  </a>
                ) : (
                  "—"
                ),
              ],
              ["Epochs", num(job.hyperparameters.n_epochs)],
              ["Batch size", num(job.hyperparameters.batch_size)],
              ["LR multiplier", num(job.hyperparameters.learning_rate_multiplier)],
              ["Seed", job.seed],
              ["Created", date(job.created_at)],
              ["Duration", duration(jobDuration(job))],
              ["Trained tokens", num(job.trained_tokens)],
            ]}
          />
          <Panel title="Training metrics" id="metrics">
            <JobCharts metrics={metrics} classification={classification} />
          </Panel>
          <Panel title="Checkpoints" id="checkpoints">
            <Checkpoints checkpoints={checkpoints} />
          </Panel>
          <Panel title="Result files" id="results">
            <ResultFiles ids={job.result_files} />
          </Panel>
          {job.status === "succeeded" && (
            <Panel title="Evaluation" id="evaluation">
              <Evaluation job={job} />
            </Panel>
          )}
          <Panel title="Events" id="events">
            <JobEvents events={events} />
          </Panel>
        </>
      )}
    </Page>
  );
}
