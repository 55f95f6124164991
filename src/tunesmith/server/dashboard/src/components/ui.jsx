// Small building blocks shared by the pages.
import { useEffect, useRef, useState } from "preact/hooks";

/** A page: its <h1> takes the focus when the page opens (so keyboard and screen-reader users
 * land on the new content), and the document title follows it. */
export function Page({ title, actions, children }) {
  const heading = useRef(null);
  useEffect(() => {
    document.title = `${title} · tunesmith`;
    heading.current?.focus({ preventScroll: true });
  }, [title]);
  return (
    <section class="page" aria-labelledby="page-title">
      <header class="page-header">
        <h1 id="page-title" tabIndex={-1} ref={heading}>
          {title}
        </h1>
        {actions && <div class="actions">{actions}</div>}
      </header>
      {children}
    </section>
  );
}

export function Panel({ title, children, id, actions }) {
  const headingId = id ? `${id}-title` : undefined;
  return (
    <section class="panel" id={id} aria-labelledby={headingId}>
      {(title || actions) && (
        <div class="panel-header">
          {title && <h2 id={headingId}>{title}</h2>}
          {actions && <div class="actions">{actions}</div>}
        </div>
      )}
      {children}
    </section>
  );
}

const STATUS_TONE = {
  succeeded: "good",
  processed: "good",
  running: "busy",
  validating_files: "busy",
  queued: "wait",
  paused: "wait",
  uploaded: "wait",
  failed: "bad",
  error: "bad",
  cancelled: "muted",
};

export function Status({ value }) {
  const text = (value || "unknown").replace(/_/g, " ");
  return <span class={`status status-${STATUS_TONE[value] || "muted"}`}>{text}</span>;
}

export function ErrorNote({ error }) {
  if (!error) return null;
  return (
    <p class="error-note" role="alert">
      {error.message || String(error)}
    </p>
  );
}

export function Loading({ what = "Loading" }) {
  return (
    <p class="muted" role="status">
      {what}…
    </p>
  );
}

/** A destructive action asks once more, inline (no modal dialog). */
export function ConfirmButton({ label, confirm, onConfirm, disabled, busyLabel = "Working" }) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const yes = useRef(null);
  useEffect(() => {
    if (asking) yes.current?.focus();
  }, [asking]);
  if (!asking) {
    return (
      <button type="button" class="danger" disabled={disabled} onClick={() => setAsking(true)}>
        {label}
      </button>
    );
  }
  return (
    <span class="confirm" role="group" aria-label={confirm}>
      <span>{confirm}</span>
      <button
        type="button"
        class="danger"
        ref={yes}
        disabled={busy}
        onClick={async () => {
          setBusy(true);
          try {
            await onConfirm();
          } finally {
            setBusy(false);
            setAsking(false);
          }
        }}
      >
        {busy ? `${busyLabel}…` : "Yes"}
      </button>
      <button type="button" onClick={() => setAsking(false)}>
        No
      </button>
    </span>
  );
}

/** A definition list of [label, value] pairs. */
export function Facts({ items }) {
  return (
    <dl class="facts">
      {items
        .filter((item) => item)
        .map(([label, value]) => (
          <div key={label}>
            <dt>{label}</dt>
            <dd>{value}</dd>
          </div>
        ))}
    </dl>
  );
}

export function Empty({ children }) {
  return <p class="empty">{children}</p>;
}
