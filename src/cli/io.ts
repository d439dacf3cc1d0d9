/** What every CLI command writes to and where it runs: no process globals, so tests run it in-process. */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  cwd: string;
  /** Reads all of standard input (default: the process's); secrets are passed this way. */
  readStdin?: () => Promise<string>;
}
