import { html, render } from 'htm/preact';
import { useState } from 'preact/hooks';
import { forgetToken, get, savedToken, saveToken, Unauthorized, type Scope } from './api.js';
import { LiveView } from './live.js';
import { SpendView } from './spend.js';
import { ProvidersView } from './providers.js';
import { KeysView } from './keys.js';
import './style.css';

type View = 'live' | 'spend' | 'providers' | 'keys';

const VIEWS: { view: View; label: string }[] = [
  { view: 'live', label: 'Live state' },
  { view: 'spend', label: 'Spend' },
  { view: 'providers', label: 'Providers and models' },
  { view: 'keys', label: 'Keys' },
];

/** The view a `#hash` names (live when none). */
function viewOf(hash: string): View {
  return VIEWS.find((v) => `#${v.view}` === hash)?.view ?? 'live';
}

interface Session {
  token: string;
  scope: Scope;
}

/** Which scope the token has, or undefined when the API refuses it. */
async function scopeOf(token: string): Promise<Scope | undefined> {
  try {
    return (await get<{ scope: Scope }>(token, '/v1/whoami')).scope;
  } catch (e) {
    if (e instanceof Unauthorized) return undefined;
    throw e;
  }
}

function Login(props: { message?: string; onLogin: (session: Session) => void }) {
  const [token, setToken] = useState('');
  const [message, setMessage] = useState(props.message);
  const submit = async (event: Event) => {
    event.preventDefault();
    const scope = await scopeOf(token.trim()).catch((e: unknown) => {
      setMessage(e instanceof Error ? e.message : String(e));
      return undefined;
    });
    if (!scope) {
      setMessage('That token was refused: use a read or admin token of this controller.');
      return;
    }
    saveToken(token.trim());
    props.onLogin({ token: token.trim(), scope });
  };
  return html`<form class="login" data-view="login" onSubmit=${submit}>
    <h1>Model Center</h1>
    <p>Enter an API token (read or admin). It is kept for this browser session only.</p>
    <input
      type="password"
      name="token"
      autocomplete="off"
      placeholder="API token"
      value=${token}
      onInput=${(e: Event) => setToken((e.target as HTMLInputElement).value)}
    />
    <button type="submit">Sign in</button>
    ${message && html`<p class="error" data-testid="login-error">${message}</p>`}
  </form>`;
}

function App(props: { initial?: Session; message?: string }) {
  const [session, setSession] = useState<Session | undefined>(props.initial);
  const [message, setMessage] = useState(props.message);
  const [view, setView] = useState<View>(viewOf(location.hash));
  const signOut = (why?: string) => {
    forgetToken();
    setSession(undefined);
    setMessage(why);
  };
  if (!session) {
    return html`<${Login}
      message=${message}
      onLogin=${(s: Session) => {
        setMessage(undefined);
        setSession(s);
      }}
    />`;
  }
  const show = (next: View) => {
    location.hash = next;
    setView(next);
  };
  const unauthorized = () => signOut('The token is no longer accepted: sign in again.');
  return html`<div>
    <header>
      <b>Model Center</b>
      <nav>
        ${VIEWS.map(
          (v) =>
            html`<button
              class=${view === v.view ? 'tab active' : 'tab'}
              data-tab=${v.view}
              onClick=${() => show(v.view)}
            >
              ${v.label}
            </button>`,
        )}
      </nav>
      <span class="scope" data-testid="scope">${session.scope} token</span>
      <button class="link" onClick=${() => signOut()}>Sign out</button>
    </header>
    <main>
      <${VIEW_COMPONENTS[view]}
        token=${session.token}
        scope=${session.scope}
        onUnauthorized=${unauthorized}
      />
    </main>
  </div>`;
}

const VIEW_COMPONENTS = {
  live: LiveView,
  spend: SpendView,
  providers: ProvidersView,
  keys: KeysView,
} satisfies Record<View, unknown>;

async function start(): Promise<void> {
  const root = document.getElementById('app')!;
  const token = savedToken();
  let initial: Session | undefined;
  let message: string | undefined;
  if (token) {
    const scope = await scopeOf(token).catch(() => undefined);
    if (scope) initial = { token, scope };
    else {
      forgetToken();
      message = 'The saved token was refused: sign in again.';
    }
  }
  render(html`<${App} initial=${initial} message=${message} />`, root);
}

void start();
