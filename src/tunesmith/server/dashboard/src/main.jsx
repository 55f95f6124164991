// The dashboard's shell: sign-in gate, navigation, and the page for the current route.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { auth } from "./api.js";
import { DatasetPage } from "./pages/DatasetPage.jsx";
import { DatasetsPage } from "./pages/DatasetsPage.jsx";
import { JobPage } from "./pages/JobPage.jsx";
import { JobsPage } from "./pages/JobsPage.jsx";
import { ModelsPage } from "./pages/ModelsPage.jsx";
import { NewJobPage } from "./pages/NewJobPage.jsx";
import { PlaygroundPage } from "./pages/PlaygroundPage.jsx";
import { SignInPage } from "./pages/SignInPage.jsx";
import { match, useRoute } from "./router.js";
import "./style.css";

const NAV = [
  ["#/jobs", "Fine-tuning", "/jobs"],
  ["#/datasets", "Datasets", "/datasets"],
  ["#/playground", "Playground", "/playground"],
  ["#/models", "Models", "/models"],
];

const ROUTES = [
  ["/datasets", DatasetsPage],
  ["/datasets/:id", DatasetPage],
  ["/jobs", JobsPage],
  ["/jobs/new", NewJobPage],
  ["/jobs/:id", JobPage],
  ["/playground", PlaygroundPage],
  ["/models", ModelsPage],
];

function useSignedIn() {
  const [key, setKey] = useState(auth.key);
  useEffect(() => auth.subscribe(() => setKey(auth.key)), []);
  return Boolean(key);
}

function Current({ route }) {
  const path = route.path === "/" ? "/jobs" : route.path;
  for (const [pattern, Component] of ROUTES) {
    const params = match(pattern, path);
    if (params) return <Component key={path} {...params} query={route.query} />;
  }
  return (
    <section class="page">
      <h1>Not found</h1>
      <p>
        Nothing here. <a href="#/jobs">Go to fine-tuning jobs</a>.
      </p>
    </section>
  );
}

function App() {
  const signedIn = useSignedIn();
  const route = useRoute();
  if (!signedIn) return <SignInPage />;
  const key = auth.key;
  return (
    <>
      <a
        class="skip-link"
        href="#main"
        onClick={(e) => {
          e.preventDefault();
          document.getElementById("main")?.focus();
        }}
      >
        Skip to content
      </a>
      <header class="topbar">
        <a class="brand" href="#/jobs">
          <img src="/assets/favicon.svg" alt="" width="24" height="24" />
          tunesmith
        </a>
        <nav aria-label="Main">
          <ul>
            {NAV.map(([href, label, prefix]) => (
              <li key={href}>
                <a href={href} aria-current={route.path.startsWith(prefix) ? "page" : undefined}>
                  {label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="account">
          <span class="muted" title="The API key this tab is signed in with">
            key {key.slice(0, 7)}…{key.slice(-4)}
          </span>
          <button type="button" onClick={() => auth.signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Current route={route} />
      </main>
    </>
  );
}

render(<App />, document.getElementById("app"));
