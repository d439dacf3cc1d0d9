import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';
import path from 'node:path';
import type { Logger } from '../log/logger.js';
import { protectStateDir, stateSecret } from '../settings/state-secret.js';
import { describeError } from '../shared/errors.js';
import { readIfExists, writeFileAtomically } from '../shared/fs.js';
import {
  checkSecretName,
  SecretStoreError,
  type PutOptions,
  type SecretStore,
  type StoredSecret,
} from './store.js';

/** The environment variable holding the store's encryption key. */
export const SECRET_KEY_ENV = 'MODELCENTER_SECRET_KEY';
/** The store's file in the state directory. */
export const SECRET_STORE_FILE = 'secrets.enc.json';

const ALGORITHM = 'aes-256-gcm';
const IV_BYTES = 12;
/** What the encrypted JSON names as its format, so a future format can read an old file. */
const FORMAT = 'modelcenter-secrets/1';

interface EncryptedFile {
  format: string;
  iv: string;
  tag: string;
  data: string;
}

interface Contents {
  secrets: Record<string, Omit<StoredSecret, 'name'>>;
}

/**
 * The local secret store: one file (`secrets.enc.json`, mode 0600) in the state directory, its
 * contents encrypted with AES-256-GCM (node:crypto) under a key from `MODELCENTER_SECRET_KEY` —
 * 64 hex characters are the key itself, any other text (at least 16 characters) is stretched with
 * scrypt — or, when unset, a key generated once into the state directory (`secret-key`, 0600).
 * Every change rewrites the file through a temporary file and a rename, so a crash leaves the old
 * file or the new one; a fresh IV per write. Changes are serialised within the process; one
 * process owns the file (the running service, or the CLI when no service runs).
 */
export class LocalSecretStore implements SecretStore {
  readonly backend = 'local-file';
  private contents: Contents = { secrets: {} };
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly file: string,
    private readonly key: Buffer,
  ) {}

  /** Opens (or creates on first write) the store in `stateDir`. */
  static async open(options: {
    stateDir: string;
    env: NodeJS.ProcessEnv;
    log: Logger;
  }): Promise<LocalSecretStore> {
    const key = await storeKey(options);
    const store = new LocalSecretStore(path.join(options.stateDir, SECRET_STORE_FILE), key);
    await store.load();
    return store;
  }

  /** Re-reads the file (another process may have changed it). */
  async load(): Promise<void> {
    const text = await readIfExists(this.file);
    this.contents = text === undefined ? { secrets: {} } : this.decrypt(text);
  }

  get(name: string): Promise<StoredSecret | undefined> {
    return Promise.resolve(this.peek(name));
  }

  peek(name: string): StoredSecret | undefined {
    const entry = Object.hasOwn(this.contents.secrets, name)
      ? this.contents.secrets[name]
      : undefined;
    return entry && structuredClone({ name, ...entry });
  }

  names(): string[] {
    return Object.keys(this.contents.secrets).sort();
  }

  list(): Promise<StoredSecret[]> {
    return Promise.resolve(
      Object.keys(this.contents.secrets)
        .sort()
        .map((name) => this.peek(name)!),
    );
  }

  async put(name: string, value: string, options: PutOptions = {}): Promise<StoredSecret> {
    checkSecretName(name);
    if (value.length === 0 || value.trim() !== value || /[\r\n]/.test(value)) {
      throw new SecretStoreError(
        `secret ${name}: the value is empty or has leading/trailing whitespace or a line break — pass the value alone`,
      );
    }
    return await this.change((secrets) => {
      const now = new Date().toISOString();
      const old =
        secrets[name]?.current ??
        (options.replacing === undefined
          ? undefined
          : { value: options.replacing, createdAt: now });
      secrets[name] = {
        current: { value, createdAt: now },
        ...(old &&
          options.keepPreviousUntil && {
            previous: { ...old, expiresAt: options.keepPreviousUntil.toISOString() },
          }),
      };
      return { name, ...secrets[name] };
    });
  }

  restorePrevious(name: string): Promise<StoredSecret> {
    return this.change((secrets) => {
      const entry = secrets[name];
      if (!entry?.previous) {
        throw new SecretStoreError(
          `secret ${name}: no previous value to restore (it expired or was retired)`,
        );
      }
      secrets[name] = {
        current: { value: entry.previous.value, createdAt: entry.previous.createdAt },
      };
      return { name, ...secrets[name] };
    });
  }

  setPreviousExpiry(name: string, until: Date): Promise<void> {
    return this.change((secrets) => {
      const previous = secrets[name]?.previous;
      if (previous) previous.expiresAt = until.toISOString();
    });
  }

  dropPrevious(name: string): Promise<void> {
    return this.change((secrets) => {
      const entry = secrets[name];
      if (entry) secrets[name] = { current: entry.current };
    });
  }

  delete(name: string): Promise<void> {
    return this.change((secrets) => {
      delete secrets[name];
    });
  }

  /** Applies `edit` to a copy, writes it, and only then makes it the store's state. */
  private change<T>(edit: (secrets: Contents['secrets']) => T): Promise<T> {
    const run = this.queue.then(async () => {
      const next = structuredClone(this.contents);
      const result = edit(next.secrets);
      await protectStateDir(path.dirname(this.file));
      await writeFileAtomically(this.file, this.encrypt(next), { mode: 0o600 });
      this.contents = next;
      return result;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private encrypt(contents: Contents): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv(ALGORITHM, this.key, iv);
    cipher.setAAD(Buffer.from(FORMAT));
    const data = Buffer.concat([cipher.update(JSON.stringify(contents), 'utf8'), cipher.final()]);
    const file: EncryptedFile = {
      format: FORMAT,
      iv: iv.toString('base64'),
      tag: cipher.getAuthTag().toString('base64'),
      data: data.toString('base64'),
    };
    return `${JSON.stringify(file, null, 2)}\n`;
  }

  private decrypt(text: string): Contents {
    let file: EncryptedFile;
    try {
      file = JSON.parse(text) as EncryptedFile;
    } catch {
      throw new SecretStoreError(`${this.file} is not a Model Center secret store (not JSON)`);
    }
    if (file.format !== FORMAT) {
      throw new SecretStoreError(
        `${this.file} has format ${JSON.stringify(file.format)}; this Model Center reads ${FORMAT}`,
      );
    }
    try {
      const decipher = createDecipheriv(ALGORITHM, this.key, Buffer.from(file.iv, 'base64'));
      decipher.setAAD(Buffer.from(FORMAT));
      decipher.setAuthTag(Buffer.from(file.tag, 'base64'));
      const plain = Buffer.concat([
        decipher.update(Buffer.from(file.data, 'base64')),
        decipher.final(),
      ]).toString('utf8');
      const contents = JSON.parse(plain) as Contents;
      return { secrets: contents.secrets ?? {} };
    } catch (error) {
      throw new SecretStoreError(
        `cannot decrypt ${this.file} (${describeError(error)}) — ${SECRET_KEY_ENV} (or the state directory's secret-key file) is not the key it was written with`,
      );
    }
  }
}

/** The store's 32-byte key: MODELCENTER_SECRET_KEY, or generated into the state directory. */
async function storeKey(options: {
  stateDir: string;
  env: NodeJS.ProcessEnv;
  log: Logger;
}): Promise<Buffer> {
  const given = options.env[SECRET_KEY_ENV]?.trim();
  if (given) {
    if (/^[0-9a-fA-F]{64}$/.test(given)) return Buffer.from(given, 'hex');
    if (given.length < 16) {
      throw new SecretStoreError(
        `${SECRET_KEY_ENV} is too short: use 64 hex characters (openssl rand -hex 32) or a passphrase of at least 16 characters`,
      );
    }
    return scryptSync(given, 'modelcenter-secret-store', 32);
  }
  const generated = await stateSecret(options.stateDir, 'secret-key', '', options.log);
  return Buffer.from(generated, 'hex');
}
