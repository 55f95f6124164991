import { useEffect, useRef, useState } from "preact/hooks";
import { api, auth } from "../api.js";
import { ErrorNote } from "../components/ui.jsx";

export function SignInPage() {
  const [key, setKey] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const input = useRef(null);
  useEffect(() => {
    document.title = "Sign in · tunesmith";
    input.current?.focus();
  }, []);

  async function submit(event) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api("/files?limit=1", { key: key.trim() }); // checks the key
      auth.signIn(key.trim());
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  return (
    <main class="signin" id="main">
      <form class="panel" onSubmit={submit} aria-labelledby="signin-title">
        <h1 id="signin-title">
          <img src="/assets/favicon.svg" alt="" width="28" height="28" /> tunesmith
        </h1>
        <p>Sign in with a project's API key. Make one on the server with:</p>
        <pre>tunesmith keys create --project NAME</pre>
        <label for="api-key">API key</label>
        <input
          id="api-key"
          ref={input}
          type="password"
          autocomplete="off"
          spellcheck={false}
          required
          value={key}
          onInput={(e) => setKey(e.currentTarget.value)}
        />
        <ErrorNote error={error} />
        <button type="submit" class="primary" disabled={busy || !key.trim()}>
          {busy ? "Checking…" : "Sign in"}
        </button>
        <p class="muted small">
          The key is kept in this browser tab only (session storage) and is forgotten when the tab
          closes.
        </p>
      </form>
    </main>
  );
}
