// Browse a data file's records a few at a time, shown as a reader would want them: chat
// messages by role, prompt and completion, text and label.
import { useState } from "preact/hooks";
import { useApi } from "../hooks.js";
import { ErrorNote, Loading } from "./ui.jsx";

const PAGE = 5;

function content(value) {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return value.map((p) => p?.text ?? JSON.stringify(p)).join("");
  return JSON.stringify(value);
}

function Record({ record }) {
  if (!record || typeof record !== "object" || Array.isArray(record)) {
    return <pre class="raw">{typeof record === "string" ? record : JSON.stringify(record)}</pre>;
  }
  if (Array.isArray(record.messages)) {
    return (
      <ol class="messages">
        {record.messages.map((m, i) => (
          <li key={i} class={`message role-${m.role}`}>
            <span class="role">{m.role}</span>
            <span class="content">{content(m.content ?? (m.tool_calls ? m.tool_calls : ""))}</span>
          </li>
        ))}
      </ol>
    );
  }
  if ("prompt" in record && "completion" in record) {
    return (
      <dl class="pairs">
        <dt>prompt</dt>
        <dd>{content(record.prompt)}</dd>
        <dt>completion</dt>
        <dd>{content(record.completion)}</dd>
      </dl>
    );
  }
  if ("text" in record && "label" in record) {
    return (
      <dl class="pairs">
        <dt>text</dt>
        <dd>{content(record.text)}</dd>
        <dt>label</dt>
        <dd class="mono">{content(record.label)}</dd>
      </dl>
    );
  }
  return <pre class="raw">{JSON.stringify(record, null, 2)}</pre>;
}

export function Examples({ fileId }) {
  const [offset, setOffset] = useState(0);
  const page = useApi(`/files/${fileId}/examples?offset=${offset}&limit=${PAGE}`);
  const rows = page.data?.data || [];
  return (
    <div class="examples">
      <ErrorNote error={page.error} />
      {page.loading && !page.data && <Loading />}
      <ol class="example-list" aria-live="polite">
        {rows.map((row) => (
          <li key={row.line} class="example">
            <div class="example-line">
              line {row.line}
              {row.error && <span class="bad-text"> · {row.error}</span>}
            </div>
            <Record record={row.record} />
          </li>
        ))}
      </ol>
      <div class="row pager">
        <button
          type="button"
          disabled={offset === 0}
          onClick={() => setOffset(Math.max(0, offset - PAGE))}
        >
          Previous
        </button>
        <span class="muted">
          {rows.length ? `Examples ${offset + 1}–${offset + rows.length}` : "No examples"}
        </span>
        <button
          type="button"
          disabled={!page.data?.has_more}
          onClick={() => setOffset(offset + PAGE)}
        >
          Next
        </button>
      </div>
    </div>
  );
}
