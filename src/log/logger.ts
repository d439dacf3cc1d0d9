import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(options: {
  level: string;
  destination?: NodeJS.WritableStream;
}): Logger {
  return pino({ level: options.level }, options.destination ?? process.stdout);
}
