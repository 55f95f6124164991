// The API client: every request carries the API key kept in sessionStorage (it is gone when
// the browser tab closes). Errors come back in OpenAI's envelope and are thrown as ApiError.

const KEY = "tunesmith.apiKey";
const listeners = new Set();

export const auth = {
  get key() {
    return sessionStorage.getItem(KEY);
  },
  signIn(key) {
    sessionStorage.setItem(KEY, key);
    listeners.forEach((fn) => fn());
  },
  signOut() {
    sessionStorage.removeItem(KEY);
    listeners.forEach((fn) => fn());
  },
  subscribe(fn) {
    listeners.add(fn);
    return () => listeners.delete(fn);
  },
};

export class ApiError extends Error {
  constructor(status, message, param = null) {
    super(message);
    this.status = status;
    this.param = param;
  }
}

function headers(extra = {}, key = auth.key) {
  return { Authorization: `Bearer ${key}`, ...extra };
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  let param = null;
  try {
    const body = await response.json();
    message = body?.error?.message || message;
    param = body?.error?.param ?? null;
  } catch {
    // not JSON: keep the status line
  }
  if (response.status === 401 && auth.key) auth.signOut();
  return new ApiError(response.status, message, param);
}

/** `api("/files")`; `api("/fine_tuning/jobs", { method: "POST", body: {...} })`. */
export async function api(path, { method = "GET", body, form, signal, key } = {}) {
  const init = { method, signal, headers: headers({}, key ?? auth.key) };
  if (form) init.body = form;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(`/v1${path}`, init);
  if (!response.ok) throw await failure(response);
  return response.json();
}

/** Every item of a cursor-paged list (`after` = the last id of the previous page). */
export async function listAll(path, { limit = 100, max = 10000 } = {}) {
  const items = [];
  let after = null;
  const sep = path.includes("?") ? "&" : "?";
  while (items.length < max) {
    const cursor = after ? `&after=${encodeURIComponent(after)}` : "";
    const page = await api(`${path}${sep}limit=${limit}${cursor}`);
    items.push(...page.data);
    if (!page.has_more || !page.data.length) break;
    after = page.last_id;
  }
  return items;
}

/** Download a file's bytes (the request needs the key, so a plain link will not do). */
export async function download(fileId, filename) {
  const response = await fetch(`/v1/files/${encodeURIComponent(fileId)}/content`, {
    headers: headers(),
  });
  if (!response.ok) throw await failure(response);
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/**
 * Stream a chat completion (server-sent events); calls onDelta(text) for each piece of the
 * reply and resolves with the finish reason.
 */
export async function streamChat(body, onDelta, signal) {
  const response = await fetch("/v1/chat/completions", {
    method: "POST",
    signal,
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify({ ...body, stream: true }),
  });
  if (!response.ok) throw await failure(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let finish = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trim())
        .join("\n");
      if (!data || data === "[DONE]") continue;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new ApiError(500, chunk.error.message || "stream failed");
      const choice = chunk.choices?.[0];
      if (choice?.delta?.content) onDelta(choice.delta.content);
      if (choice?.finish_reason) finish = choice.finish_reason;
    }
  }
  return finish;
}
