import { watch, type FSWatcher } from 'chokidar';
import { buildFromDir } from '../compile/build.js';
import { formatProblem } from '../policy/problems.js';
import { describeError } from '../shared/errors.js';

export interface PolicyWatcherOptions {
  policiesDir: string;
  /** Quiet time after the last change before the set is rebuilt. */
  debounceMs?: number;
  /** Called with a valid set whose compiled config differs from the last one acted on. */
  onChange: (yaml: string) => Promise<void>;
  /** Called when an edit leaves the set invalid: the last good set stays in force. */
  onInvalid: (problems: string[]) => void;
}

/**
 * Dev mode: watches the policy files, debounced. Every change rebuilds the whole set; an invalid
 * set is reported and ignored (the last good one stays live); an edit that does not change the
 * compiled config (a comment, reordering) does nothing. The initial scan is not a change.
 */
export class PolicyWatcher {
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastYaml: string | undefined;
  private running: Promise<void> = Promise.resolve();

  constructor(private readonly options: PolicyWatcherOptions) {}

  async start(): Promise<void> {
    this.lastYaml = (await buildFromDir(this.options.policiesDir)).yaml;
    this.watcher = watch(this.options.policiesDir, {
      ignoreInitial: true,
      awaitWriteFinish: { stabilityThreshold: 50, pollInterval: 10 },
    });
    this.watcher.on('all', () => this.schedule());
    await new Promise<void>((resolve) => this.watcher!.once('ready', () => resolve()));
  }

  /** Resolves once every change seen so far has been handled. */
  idle(): Promise<void> {
    return this.running;
  }

  async close(): Promise<void> {
    clearTimeout(this.timer);
    await this.watcher?.close();
    await this.running;
  }

  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.running = this.running.then(() => this.rebuild());
    }, this.options.debounceMs ?? 300);
  }

  private async rebuild(): Promise<void> {
    const build = await buildFromDir(this.options.policiesDir);
    if (!build.yaml) {
      this.options.onInvalid(build.findings.errors.map(formatProblem));
      return;
    }
    if (build.yaml === this.lastYaml) return;
    const previous = this.lastYaml;
    this.lastYaml = build.yaml;
    try {
      await this.options.onChange(build.yaml);
    } catch (error) {
      // Not acted on (git refused the commit, another apply held the lock): the next save retries.
      this.lastYaml = previous;
      this.options.onInvalid([`applying the edited policies failed: ${describeError(error)}`]);
    }
  }
}
