// Facts about fine-tuning jobs shared by the pages.
import { now } from "./format.js";

export const FINAL = new Set(["succeeded", "failed", "cancelled"]);
export const isFinal = (job) => FINAL.has(job.status);

export function jobDuration(job) {
  const end = job.finished_at || (isFinal(job) ? null : now());
  return end ? end - job.created_at : null;
}

export function jobTask(job) {
  return job.method?.type === "classification" ? "classification" : "chat / completion";
}

/** Whether the job trains only on de-identified files (`method.<type>.deidentify`). */
export function isDeidentified(job) {
  const type = job.method?.type || "supervised";
  return Boolean(job.method?.[type]?.deidentify);
}

export function trainingMethod(job) {
  const type = job.method?.type || "supervised";
  return job.method?.[type]?.training_method || "lora";
}
