// Which models there are: /v1/models (base and fine-tuned), completed by the jobs (the base
// of each fine-tuned model, and bases used before, such as local model folders).
import { api, listAll } from "./api.js";

export const isFineTuned = (id) => id.startsWith("ft:");

async function listedModels() {
  try {
    return (await api("/models")).data || [];
  } catch (error) {
    if (error.status === 404) return []; // a server without /v1/models
    throw error;
  }
}

/**
 * { models: [{id, owned_by, created, ...}], bases: [id], recentBases: [id], fineTuned: [{id,
 * base, job}] }; recentBases are the bases of this project's jobs, newest first: loaded
 * (or converted) before, so a good default that costs nothing to check data with.
 */
export async function loadCatalog() {
  const [models, jobs] = await Promise.all([listedModels(), listAll("/fine_tuning/jobs")]);
  const bases = new Set(models.map((m) => m.id).filter((id) => !isFineTuned(id)));
  const baseOf = new Map();
  for (const job of jobs) {
    bases.add(job.model);
    if (job.fine_tuned_model) baseOf.set(job.fine_tuned_model, { base: job.model, job });
  }
  const fineTuned = [];
  const seen = new Set();
  for (const m of models.filter((m) => isFineTuned(m.id))) {
    const known = baseOf.get(m.id) || baseOf.get(m.id.replace(/:ckpt-step-\d+$/, ""));
    fineTuned.push({ id: m.id, base: known?.base ?? null, job: known?.job ?? null });
    seen.add(m.id);
  }
  for (const [id, { base, job }] of baseOf) {
    if (!seen.has(id) && job.status === "succeeded") fineTuned.push({ id, base, job });
  }
  const recentBases = [...new Set(jobs.map((job) => job.model))];
  return { models, bases: [...bases], recentBases, fineTuned };
}
