import path from 'node:path';
import { isMap, isSeq, parseDocument, type Document } from 'yaml';
import { readPolicyDir, type LoadedText } from '../policy/load.js';

/**
 * Edits of policy files as a proposal makes them: content → content, comments and the rest of the
 * file kept (yaml's Document API). Entries are edited where they are defined; new ones join the
 * first file holding their section, else `providers.yaml` / `models.yaml` at the top of the
 * policies directory (created).
 */

/** The policy files' texts, named relative to the policies directory. */
export interface PolicyTexts {
  dir: string;
  texts: Map<string, string>;
  /** Files as read (problems included): what validation sees for files not edited. */
  loaded: LoadedText[];
}

export async function readPolicyTexts(dir: string): Promise<PolicyTexts> {
  const loaded = await readPolicyDir(dir, dir);
  return { dir, loaded, texts: new Map(loaded.map((t) => [t.name, t.text])) };
}

export type Section = 'providers' | 'models' | 'profiles';

const DEFAULT_FILE: Record<Section, string> = {
  providers: 'providers.yaml',
  models: 'models.yaml',
  profiles: 'profiles.yaml',
};

/** The changed files: relative name → new text. */
export type Edits = Map<string, string>;

export class PolicyEditor {
  readonly edits: Edits = new Map();

  constructor(private readonly policies: PolicyTexts) {}

  private text(name: string): string | undefined {
    return this.edits.get(name) ?? this.policies.texts.get(name);
  }

  private doc(name: string): Document {
    return parseDocument(this.text(name) ?? '', { merge: true });
  }

  /** The file that defines `section.name`, if any. */
  definedIn(section: Section, name: string): string | undefined {
    const names = [...new Set([...this.policies.texts.keys(), ...this.edits.keys()])].sort();
    return names.find((file) => {
      const doc = this.doc(file);
      return isMap(doc.getIn([section])) && doc.hasIn([section, name]);
    });
  }

  /** The first file (in name order) with a `section:` mapping. */
  private sectionFile(section: Section): string | undefined {
    const names = [...new Set([...this.policies.texts.keys(), ...this.edits.keys()])].sort();
    return names.find((file) => isMap(this.doc(file).getIn([section])));
  }

  /**
   * Sets `section.name` to `value` where it is defined; a new entry joins the first file that
   * has the section, else the section's own file (`providers.yaml`, …), created.
   */
  set(section: Section, name: string, value: unknown): string {
    const file =
      this.definedIn(section, name) ?? this.sectionFile(section) ?? DEFAULT_FILE[section];
    const doc = this.doc(file);
    if (!isMap(doc.getIn([section]))) doc.setIn([section], doc.createNode({}));
    doc.setIn([section, name], doc.createNode(value));
    this.edits.set(file, doc.toString());
    return file;
  }

  /** Sets one field of an existing entry (`models.x.enabled`). */
  setField(section: Section, name: string, field: string, value: unknown): string | undefined {
    const file = this.definedIn(section, name);
    if (!file) return undefined;
    const doc = this.doc(file);
    if (value === undefined) doc.deleteIn([section, name, field]);
    else doc.setIn([section, name, field], value);
    this.edits.set(file, doc.toString());
    return file;
  }

  /** Removes `section.name`; undefined when nothing defines it. */
  delete(section: Section, name: string): string | undefined {
    const file = this.definedIn(section, name);
    if (!file) return undefined;
    const doc = this.doc(file);
    doc.deleteIn([section, name]);
    this.edits.set(file, doc.toString());
    return file;
  }

  /** Appends `item` to the list at `section.name.field` when it is not in it yet. */
  appendToList(section: Section, name: string, field: string, item: string): string | undefined {
    const file = this.definedIn(section, name);
    if (!file) return undefined;
    const doc = this.doc(file);
    const list = doc.getIn([section, name, field]);
    if (!isSeq(list)) return undefined;
    if (list.items.some((i) => String((i as { value?: unknown }).value ?? i) === item)) return file;
    list.add(doc.createNode(item));
    this.edits.set(file, doc.toString());
    return file;
  }

  /** The loaded texts with the edits in: what validation of the proposal reads. */
  proposedTexts(): LoadedText[] {
    const out = this.policies.loaded.map((t) =>
      this.edits.has(t.name) ? { name: t.name, text: this.edits.get(t.name)! } : t,
    );
    for (const [name, text] of this.edits) {
      if (!this.policies.texts.has(name)) out.push({ name, text });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  absolute(name: string): string {
    return path.join(this.policies.dir, name);
  }

  before(name: string): string | undefined {
    return this.policies.texts.get(name);
  }
}
