"""Fine-tuning jobs through the official SDK, on the fake engine: create, follow, list events
and checkpoints, cancel, pause, resume; a bad file fails its job naming the line."""

from __future__ import annotations

from .conftest import GOOD, Server, finished, upload, wait_job


def test_a_job_runs_to_a_fine_tuned_model(server: Server) -> None:
    client = server.client()
    file_id = upload(client)
    job = client.fine_tuning.jobs.create(
        model="tiny-model",
        training_file=file_id,
        method={
            "type": "supervised",
            "supervised": {
                "hyperparameters": {"n_epochs": 2, "batch_size": 2, "checkpoint_every": 2}
            },
        },
        suffix="demo",
        seed=7,
        metadata={"team": "red"},
    )
    assert job.status == "validating_files" and job.object == "fine_tuning.job"
    assert job.fine_tuned_model is None and job.error is None and job.seed == 7
    assert (
        job.hyperparameters.n_epochs == 2 and job.hyperparameters.learning_rate_multiplier == "auto"
    )
    assert job.method and job.method.type == "supervised"

    job = wait_job(client, job.id, finished)
    assert job.status == "succeeded", job.error
    short = job.id.removeprefix("ftjob-")
    assert job.fine_tuned_model == f"ft:tiny-model:acme:demo:{short}"
    assert job.trained_tokens == 800 and job.finished_at and job.estimated_finish is None
    assert job.hyperparameters.learning_rate_multiplier == 1.0  # resolved by the engine
    (results,) = job.result_files
    assert client.files.retrieve(results).purpose == "fine-tune-results"
    assert client.files.content(results).read().startswith(b"step,train_loss")

    events = client.fine_tuning.jobs.list_events(job.id, limit=5)
    assert len(events.data) == 5 and events.has_more
    everything = list(client.fine_tuning.jobs.list_events(job.id, limit=5))
    assert everything[-1].message.startswith("Created fine-tuning job")
    metrics = [e for e in everything if e.type == "metrics"]
    assert sorted(e.data["step"] for e in metrics) == list(range(1, 9))  # type: ignore[index]
    assert {"train_loss", "train_mean_token_accuracy"} <= set(metrics[0].data)  # type: ignore[arg-type]
    assert everything[0].message == "The job has successfully completed."

    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id)
    steps = [c.step_number for c in checkpoints.data]
    assert steps == sorted(steps, reverse=True) and steps[0] == 8
    # only the checkpoints the engine keeps (its newest 3) are listed, each usable as a model
    created = [e for e in everything if e.message.startswith("Checkpoint created")]
    assert len(created) > 3 and len(steps) == 3
    for checkpoint in checkpoints.data:
        assert client.models.retrieve(checkpoint.fine_tuned_model_checkpoint).id
    newest = checkpoints.data[0]
    assert newest.fine_tuned_model_checkpoint == f"{job.fine_tuned_model}:ckpt-step-8"
    assert newest.metrics.train_loss is not None and newest.fine_tuning_job_id == job.id

    listed = client.fine_tuning.jobs.list(metadata={"team": "red"})
    assert [j.id for j in listed.data] == [job.id]
    assert client.fine_tuning.jobs.list(metadata={"team": "blue"}).data == []


def test_a_bad_training_file_fails_the_job_naming_the_line(server: Server) -> None:
    client = server.client()
    file_id = upload(client, GOOD + b"{oops\n", name="bad.jsonl")
    job = client.fine_tuning.jobs.create(model="tiny-model", training_file=file_id)
    job = wait_job(client, job.id, finished)
    assert job.status == "failed" and job.error is not None
    assert job.error.code == "invalid_training_file" and job.error.param == "training_file"
    assert f"{file_id} (bad.jsonl), line 2: invalid JSON" in job.error.message
    assert client.files.retrieve(file_id).status == "error"


def test_pause_resume_and_cancel(server: Server) -> None:
    client = server.client()
    file_id = upload(client)
    hyper = {"n_epochs": 25, "batch_size": 2, "checkpoint_every": 5}  # 100 steps of 0.05 s
    job = client.fine_tuning.jobs.create(
        model="tiny-model",
        training_file=file_id,
        method={"type": "supervised", "supervised": {"hyperparameters": hyper}},
    )
    job = wait_job(client, job.id, lambda j: j.estimated_finish is not None)
    assert job.status == "running"
    client.fine_tuning.jobs.pause(job.id)
    job = wait_job(client, job.id, lambda j: j.status == "paused")
    steps_at_pause = client.fine_tuning.jobs.checkpoints.list(job.id).data[0].step_number

    assert client.fine_tuning.jobs.resume(job.id).status == "queued"
    wait_job(client, job.id, lambda j: j.status == "running")
    wait_job(
        client,
        job.id,
        lambda j: any(
            "resumed at step" in e.message
            for e in client.fine_tuning.jobs.list_events(j.id, limit=50)
        ),
    )
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100)]
    assert any(f"resumed at step {steps_at_pause}" in m for m in messages)
    assert client.fine_tuning.jobs.retrieve(job.id).fine_tuned_model is None


def test_listing_jobs_pages_newest_first(server: Server) -> None:
    client = server.client("globex")
    file_id = upload(client)
    created = [
        client.fine_tuning.jobs.create(model="missing-model", training_file=file_id).id
        for _ in range(3)
    ]
    page = client.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in page.data] == created[:0:-1] and page.has_more
    assert [j.id for j in client.fine_tuning.jobs.list(limit=2)] == created[::-1]
    job = wait_job(client, created[0], finished)
    assert job.status == "failed" and job.error and job.error.code == "invalid_model"
