import pino from 'pino';
import { prettyFactory } from 'pino-pretty';
import { redactSecretKeys, SecretValues } from './redact.js';

/** The only file that imports pino (eslint enforces it); everything else uses this type. */
export type Logger = pino.Logger;

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The parts of the controller that log; each gets its own child logger. */
export type Subsystem =
  'serve' | 'api' | 'apply' | 'reload' | 'litellm' | 'watch' | 'scheduler' | 'store' | 'metrics';

/** Where finished lines go; a test hands in an array-backed one. */
export interface LogDestination {
  write(line: string): unknown;
}

export interface LoggerOptions {
  level: LogLevel;
  /** Human-readable lines (pino-pretty) instead of JSON. Default: when stdout is a terminal. */
  pretty?: boolean;
  /** Default: stdout, written synchronously so nothing is lost when the process exits. */
  destination?: LogDestination;
  /**
   * The secret values to mask in every line. Keep the instance: rotation registers new values on
   * it and they are masked from then on. Default: an empty set (key-based redaction still applies).
   */
  secrets?: SecretValues;
}

/**
 * The controller's logger: JSON lines (pino) by default, pretty on a terminal. Secrets are removed
 * twice: every field named like a secret is censored at any depth (objects, errors, child
 * bindings), then every finished line has the registered secret values masked (see redact.ts).
 */
export function createLogger(options: LoggerOptions): Logger {
  const secrets = options.secrets ?? new SecretValues();
  const pretty = options.pretty ?? process.stdout.isTTY === true;
  const destination = options.destination ?? pino.destination({ dest: 1, sync: true });
  const serializeError = (error: Error): object => pino.stdSerializers.err(error);

  const logger = pino(
    {
      level: options.level,
      formatters: {
        log: (object) => redactSecretKeys(object, serializeError) as Record<string, unknown>,
        bindings: (bindings) => redactSecretKeys(bindings, serializeError) as pino.Bindings,
      },
      // formatters.log already turned every Error into a plain object; anything else passes.
      serializers: {
        err: (value: unknown) =>
          value instanceof Error ? redactSecretKeys(value, serializeError) : value,
      },
      hooks: { streamWrite: (line) => secrets.mask(line) },
    },
    pretty
      ? prettyDestination(
          destination,
          options.destination === undefined && process.stdout.isTTY === true,
        )
      : destination,
  );
  redactChildBindings(logger, serializeError);
  return logger;
}

/**
 * pino runs `formatters.bindings` on the root's own bindings only, so `logger.child({ token })`
 * would print its binding as given. Children inherit from the root through the prototype chain,
 * so replacing `child` on the root covers children of children too.
 */
function redactChildBindings(root: Logger, serializeError: (error: Error) => object): void {
  // Called below with the child's own `this`, which is the point of keeping it unbound.
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const child = root.child;
  root.child = function (this: Logger, bindings, childOptions) {
    return child.call(
      this,
      redactSecretKeys(bindings, serializeError) as pino.Bindings,
      childOptions,
    );
  } as Logger['child'];
}

/** A child logger for one subsystem: every line it writes carries `subsystem`. */
export function subsystemLogger(logger: Logger, subsystem: Subsystem): Logger {
  return logger.child({ subsystem });
}

/** A logger that writes nothing, for code paths (and tests) that need one but want no output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/**
 * Formats each line in-process and synchronously (pino-pretty's factory, not its transport): no
 * worker thread, and a line logged just before exit is written before exit.
 */
function prettyDestination(destination: LogDestination, colorize: boolean): LogDestination {
  const format = prettyFactory({
    colorize,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
  });
  return { write: (line: string) => destination.write(format(line)) };
}
