/**
 * @module gen-api-docs
 * Generates the gRPC API reference `docs/api.md` from `proto/divs/v1/*.proto`: per file, every
 * service with its RPCs, every message with a field table, every enum with its values, with the
 * comments written in the .proto files, anchors per type and links between types.
 *
 * Usage: `node scripts/gen-api-docs.ts [--check] [--undocumented]`
 * (`npm run docs:api` writes the file; `scripts/check-generated.ts` calls {@link renderApiDocs}
 * to fail CI when the committed reference is stale.)
 *
 * The output is deterministic: files sorted by name, declarations in file order.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { ERROR_CODES, GrpcCode, httpStatusOf, type ErrorCode } from '../protocol/src/errors.ts';

/** The repository root (this file lives in `scripts/`). */
const ROOT = new URL('..', import.meta.url).pathname;

/** Where the reference is written, relative to the repository root. */
export const API_DOC_PATH = 'docs/api.md';

/** The error catalogue documented in the reference, relative to the repository root. */
export const ERRORS_PATH = 'protocol/src/errors.ts';

/** The proto folder the reference documents, relative to the repository root. */
export const PROTO_DIR = 'proto/divs/v1';

/** One parsed .proto file. */
interface ProtoFile {
  /** Import path as the other files write it, e.g. `divs/v1/common.proto`. */
  path: string;
  pkg: string;
  imports: string[];
  /** The `//` comment block at the top of the file (before `syntax`), if any. */
  header: string;
  services: protobuf.Service[];
  /** Messages in file order, nested ones right after their parent. */
  messages: protobuf.Type[];
  enums: protobuf.Enum[];
}

/** Something a reader can jump to: a message, an enum or a service. */
interface Target {
  kind: 'message' | 'enum' | 'service';
  file: string;
}

const SCALARS = new Set([
  'double', 'float', 'int32', 'int64', 'uint32', 'uint64', 'sint32', 'sint64',
  'fixed32', 'fixed64', 'sfixed32', 'sfixed64', 'bool', 'string', 'bytes',
]);

/** Reads the leading `//` comment block of a file (the file-level documentation). */
function fileHeader(text: string): string {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (t.startsWith('//')) out.push(t.replace(/^\/\/ ?/, ''));
    else if (t === '') {
      if (out.length > 0) out.push('');
    } else break;
  }
  return out.join('\n').trim();
}

/** Collects the declarations of a namespace in file order, descending into messages. */
function collect(ns: protobuf.NamespaceBase, file: ProtoFile): void {
  for (const obj of ns.nestedArray) {
    if (obj instanceof protobuf.Service) file.services.push(obj);
    else if (obj instanceof protobuf.Type) {
      file.messages.push(obj);
      collect(obj, file);
    } else if (obj instanceof protobuf.Enum) file.enums.push(obj);
    else if (obj instanceof protobuf.Namespace) collect(obj, file);
  }
}

/** Parses every `*.proto` of `dir` (sorted by name), keeping `//` comments. */
export function parseProtoDir(dir: string): ProtoFile[] {
  const names = readdirSync(dir).filter((n) => n.endsWith('.proto')).sort();
  const prefix = dir.split('/').slice(-2).join('/');
  return names.map((name) => {
    const text = readFileSync(join(dir, name), 'utf8');
    // alternateCommentMode: plain `//` lines count as documentation, as buf and protoc-gen-doc read them
    const parsed = protobuf.parse(text, { keepCase: true, alternateCommentMode: true });
    const file: ProtoFile = {
      path: `${prefix}/${name}`,
      pkg: parsed.package ?? '',
      imports: [...(parsed.imports ?? []), ...(parsed.weakImports ?? [])],
      header: fileHeader(text),
      services: [],
      messages: [],
      enums: [],
    };
    collect(parsed.root, file);
    return file;
  });
}

/** Full name without the leading dot, e.g. `divs.v1.UeIdentity`. */
function fullName(obj: protobuf.ReflectionObject): string {
  return obj.fullName.replace(/^\./, '');
}

/** Resolves a type reference as written in a field or method, with protobuf scoping rules. */
function resolve(ref: string, scope: string, targets: Map<string, Target>): string | undefined {
  if (ref.startsWith('.')) return targets.has(ref.slice(1)) ? ref.slice(1) : undefined;
  const parts = scope.split('.');
  for (let i = parts.length; i >= 0; i--) {
    const candidate = [...parts.slice(0, i), ref].join('.');
    if (targets.has(candidate)) return candidate;
  }
  return undefined;
}

/** Markdown-safe text: escapes `<`, `*` outside code spans (and `|` for table cells). */
function escape(text: string, cell: boolean): string {
  const parts = text.split('`');
  const out = parts.map((p, i) => {
    let s = p;
    if (cell) s = s.replace(/\|/g, '\\|');
    if (i % 2 === 1) return s; // inside a code span
    return s.replace(/</g, '&lt;').replace(/\*/g, '\\*');
  });
  return out.join('`');
}

/** A comment as one table cell (lines joined). */
function cell(comment: string | null | undefined): string {
  if (!comment) return '';
  return escape(comment.split('\n').map((l) => l.trim()).filter(Boolean).join(' '), true);
}

/** A comment as a paragraph (line breaks kept, so lists in comments stay lists). */
function paragraph(comment: string | null | undefined): string {
  return comment ? escape(comment.trim(), false) + '\n\n' : '';
}

/**
 * Anchor id of a type, service or RPC: its full name (`divs.v1.UeIdentity`); of a file: its path
 * with `/` and `.` turned into `-` (`divs-v1-common-proto`).
 */
function anchor(name: string): string {
  return name.endsWith('.proto') ? name.replace(/[/.]/g, '-') : name;
}

/** Display name of a declaration inside its package (`Outer.Inner` for nested types). */
function localName(obj: protobuf.ReflectionObject, pkg: string): string {
  const n = fullName(obj);
  return pkg && n.startsWith(pkg + '.') ? n.slice(pkg.length + 1) : n;
}

function streamingKind(m: protobuf.Method): string {
  if (m.requestStream && m.responseStream) return 'bidirectional streaming';
  if (m.requestStream) return 'client streaming';
  if (m.responseStream) return 'server streaming';
  return 'unary';
}

const GRPC_NAMES: Record<number, string> = Object.fromEntries(Object.entries(GrpcCode).map(([k, v]) => [v, k]));

/**
 * The error-code appendix: every code of `ERROR_CODES` with its gRPC and HTTP status, grouped
 * under the `//` headings of the catalogue in `errors.ts` (read as text, only for the headings).
 */
function renderErrorCodes(errorsSource: string): string[] {
  const groups: { title: string; codes: ErrorCode[] }[] = [];
  const body = errorsSource.slice(errorsSource.indexOf('export const ERROR_CODES'));
  for (const line of body.split('\n').slice(1)) {
    const t = line.trim();
    if (t.startsWith('}')) break;
    const heading = /^\/\/\s*(.+)$/.exec(t);
    const entry = /^([A-Z0-9_]+):/.exec(t);
    if (heading) groups.push({ title: heading[1] ?? '', codes: [] });
    else if (entry) {
      if (groups.length === 0) groups.push({ title: 'codes', codes: [] });
      groups.at(-1)?.codes.push(entry[1] as ErrorCode);
    }
  }
  // every code exactly once, whatever the text layout: codes the scan missed go last
  const seen = new Set(groups.flatMap((g) => g.codes));
  const rest = (Object.keys(ERROR_CODES) as ErrorCode[]).filter((c) => !seen.has(c));
  if (rest.length > 0) groups.push({ title: 'other', codes: rest });
  const out: string[] = [];
  out.push('<a id="error-codes"></a>\n');
  out.push('## Error codes\n');
  out.push(
    'Every failure carries one stable DIVS code (`ERROR_CODES` in `' + ERRORS_PATH + '`). Over gRPC the ' +
      'status code is the one below and the status message starts with the DIVS code ' +
      '(`CODE: message`); over HTTP the body is `{"error":{"code","message"}}` with the HTTP status ' +
      'below. Per-record verdicts (e.g. in verification reports) use the same codes.\n',
  );
  for (const g of groups) {
    out.push(`### ${escape(g.title.charAt(0).toUpperCase() + g.title.slice(1), false)}\n`);
    out.push('| Code | gRPC status | HTTP |');
    out.push('|---|---|---|');
    for (const c of g.codes) out.push(`| \`${c}\` | ${GRPC_NAMES[ERROR_CODES[c]] ?? ERROR_CODES[c]} | ${httpStatusOf(c)} |`);
    out.push('');
  }
  return out;
}

/**
 * Renders the API reference of every `.proto` under `protoDir` as Markdown.
 * Pure: reads the proto files, writes nothing.
 *
 * @example
 * ```ts
 * const md = renderApiDocs('proto/divs/v1');
 * ```
 */
export function renderApiDocs(protoDir: string = join(ROOT, PROTO_DIR), errorsFile: string = join(ROOT, ERRORS_PATH)): string {
  const files = parseProtoDir(protoDir);

  const targets = new Map<string, Target>();
  for (const f of files) {
    for (const s of f.services) targets.set(fullName(s), { kind: 'service', file: f.path });
    for (const m of f.messages) targets.set(fullName(m), { kind: 'message', file: f.path });
    for (const e of f.enums) targets.set(fullName(e), { kind: 'enum', file: f.path });
  }

  // back-references: which messages / RPCs use a type ("Used by"), in document order
  const usedBy = new Map<string, string[]>();
  const addUse = (target: string | undefined, user: string): void => {
    if (!target) return;
    const list = usedBy.get(target) ?? [];
    if (!list.includes(user)) list.push(user);
    usedBy.set(target, list);
  };
  for (const f of files) {
    for (const s of f.services) {
      for (const m of s.methodsArray) {
        const user = `${fullName(s)}.${m.name}`;
        addUse(resolve(m.requestType, fullName(s), targets), user);
        addUse(resolve(m.responseType, fullName(s), targets), user);
      }
    }
    for (const msg of f.messages) {
      for (const fld of msg.fieldsArray) addUse(resolve(fld.type, fullName(msg), targets), fullName(msg));
    }
  }

  const link = (ref: string, scope: string): string => {
    const t = resolve(ref, scope, targets);
    if (t) return `[\`${t.split('.').slice(-1)[0]}\`](#${anchor(t)})`;
    return `\`${ref.replace(/^\./, '')}\``;
  };
  const userLink = (user: string): string => {
    if (targets.has(user)) return `[\`${user.split('.').slice(-1)[0]}\`](#${anchor(user)})`;
    // an RPC (anchored in its service's table): name it Service.Method
    return `[\`${user.split('.').slice(-2).join('.')}\`](#${anchor(user)})`;
  };

  const out: string[] = [];
  out.push('# DIVS gRPC API reference\n');
  out.push(
    '<!-- Generated by scripts/gen-api-docs.ts from proto/divs/v1/*.proto. Do not edit: run `npm run docs:api`. -->\n',
  );
  out.push(
    'The contract between the DIVS parts (ITU-T Y.2247 reference points), generated from the ' +
      '`.proto` files in `proto/divs/v1/` and their comments. Every server also exposes gRPC ' +
      'health checking (`grpc.health.v1.Health`) and server reflection. Errors travel as a gRPC ' +
      'status whose message starts with a DIVS error code ([Error codes](#error-codes)).\n',
  );
  out.push(
    'Conventions: `int64`/`uint64` values are carried as JavaScript numbers by the generated ' +
      'TypeScript code (`proto/gen/divs/v1/`); times ending in `_ms` are Unix epoch milliseconds ' +
      'unless the comment says otherwise; signed objects carry their exact signed bytes beside the ' +
      'signature (never a re-serialization).\n',
  );

  out.push('## Contents\n');
  for (const f of files) {
    out.push(`- [\`${f.path}\`](#${anchor(f.path)})`);
    if (f.services.length > 0) {
      out.push(`  - services: ${f.services.map((s) => `[\`${s.name}\`](#${anchor(fullName(s))})`).join(', ')}`);
    }
    out.push(`  - ${f.messages.length} messages, ${f.enums.length} enums`);
  }
  out.push('- [Error codes](#error-codes)');
  out.push('');

  for (const f of files) {
    out.push(`<a id="${anchor(f.path)}"></a>\n`);
    out.push(`## \`${f.path}\`\n`);
    out.push(`Package \`${f.pkg}\`.` + (f.imports.length ? ` Imports: ${f.imports.map((i) => `[\`${i}\`](#${anchor(i)})`).join(', ')}.` : ''));
    out.push('');
    if (f.header) out.push(paragraph(f.header).trimEnd() + '\n');

    if (f.services.length > 0) {
      out.push('### Services\n');
      for (const s of f.services) {
        const sname = fullName(s);
        out.push(`<a id="${anchor(sname)}"></a>\n`);
        out.push(`#### service \`${localName(s, f.pkg)}\`\n`);
        out.push(paragraph(s.comment).trimEnd() + (s.comment ? '\n' : ''));
        out.push('| RPC | Request | Response | Kind | Description |');
        out.push('|---|---|---|---|---|');
        for (const m of s.methodsArray) {
          out.push(
            `| <a id="${anchor(`${sname}.${m.name}`)}"></a>\`${m.name}\` | ${link(m.requestType, sname)} | ${link(m.responseType, sname)} | ${streamingKind(m)} | ${cell(m.comment)} |`,
          );
        }
        out.push('');
      }
    }

    if (f.messages.length > 0) {
      out.push('### Messages\n');
      for (const msg of f.messages) {
        const mname = fullName(msg);
        out.push(`<a id="${anchor(mname)}"></a>\n`);
        out.push(`#### message \`${localName(msg, f.pkg)}\`\n`);
        out.push(paragraph(msg.comment).trimEnd() + (msg.comment ? '\n' : ''));
        if (msg.fieldsArray.length === 0) out.push('No fields.\n');
        else {
          out.push('| Field | Number | Type | Label | Description |');
          out.push('|---|---|---|---|---|');
          for (const fld of msg.fieldsArray) {
            let type: string;
            if (fld instanceof protobuf.MapField) type = `map<\`${fld.keyType}\`, ${SCALARS.has(fld.type) ? `\`${fld.type}\`` : link(fld.type, mname)}>`;
            else type = SCALARS.has(fld.type) ? `\`${fld.type}\`` : link(fld.type, mname);
            const oneof = fld.partOf;
            let label = '';
            // proto3 `optional` is a synthetic one-field oneof named `_<field>`
            if (oneof && oneof.name === `_${fld.name}` && oneof.oneof.length === 1) label = 'optional';
            else if (oneof) label = `oneof \`${oneof.name}\``;
            else if (fld.repeated) label = 'repeated';
            else if (fld.required) label = 'required';
            else if (fld.optional && fld.options?.['proto3_optional']) label = 'optional';
            out.push(`| \`${fld.name}\` | ${fld.id} | ${type} | ${label} | ${cell(fld.comment)} |`);
          }
          out.push('');
        }
        const realOneofs = msg.oneofsArray.filter((o) => !(o.oneof.length === 1 && o.name === `_${o.oneof[0]}`));
        for (const o of realOneofs) {
          out.push(`Oneof \`${o.name}\`: exactly one of ${o.oneof.map((n) => `\`${n}\``).join(', ')}.${o.comment ? ' ' + cell(o.comment) : ''}\n`);
        }
        const users = usedBy.get(mname);
        if (users) out.push(`Used by: ${users.map(userLink).join(', ')}.\n`);
      }
    }

    if (f.enums.length > 0) {
      out.push('### Enums\n');
      for (const e of f.enums) {
        const ename = fullName(e);
        out.push(`<a id="${anchor(ename)}"></a>\n`);
        out.push(`#### enum \`${localName(e, f.pkg)}\`\n`);
        out.push(paragraph(e.comment).trimEnd() + (e.comment ? '\n' : ''));
        out.push('| Name | Number | Description |');
        out.push('|---|---|---|');
        for (const [name, num] of Object.entries(e.values)) {
          out.push(`| \`${name}\` | ${num} | ${cell(e.comments[name])} |`);
        }
        out.push('');
        const users = usedBy.get(ename);
        if (users) out.push(`Used by: ${users.map(userLink).join(', ')}.\n`);
      }
    }
  }
  out.push(...renderErrorCodes(readFileSync(errorsFile, 'utf8')));
  // exactly one trailing newline, however the last section ended
  return out.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd() + '\n';
}

/**
 * Lists the declarations that carry no comment (services, RPCs, messages, enums), so thin spots
 * of the reference can be found. Fields and enum values are counted, not listed.
 */
export function undocumented(protoDir: string = join(ROOT, PROTO_DIR)): { items: string[]; fields: number; fieldsTotal: number } {
  const items: string[] = [];
  let fields = 0;
  let fieldsTotal = 0;
  for (const f of parseProtoDir(protoDir)) {
    for (const s of f.services) {
      if (!s.comment) items.push(`${f.path}: service ${s.name}`);
      for (const m of s.methodsArray) if (!m.comment) items.push(`${f.path}: rpc ${s.name}.${m.name}`);
    }
    for (const m of f.messages) {
      if (!m.comment) items.push(`${f.path}: message ${localName(m, f.pkg)}`);
      for (const fld of m.fieldsArray) {
        fieldsTotal++;
        if (!fld.comment) fields++;
      }
    }
    for (const e of f.enums) if (!e.comment) items.push(`${f.path}: enum ${localName(e, f.pkg)}`);
  }
  return { items, fields, fieldsTotal };
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const target = join(ROOT, API_DOC_PATH);
  const md = renderApiDocs();
  if (args.includes('--undocumented')) {
    const u = undocumented();
    console.log(u.items.join('\n'));
    console.log(`${u.items.length} declarations without a comment; ${u.fields}/${u.fieldsTotal} fields without a comment`);
  } else if (args.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(target, 'utf8');
    } catch {
      // a missing file is simply stale
    }
    if (current !== md) {
      console.error(`${API_DOC_PATH} is stale; run 'npm run docs:api' and commit`);
      process.exit(1);
    }
    console.log(`${API_DOC_PATH} is fresh`);
  } else {
    writeFileSync(target, md);
    console.log(`wrote ${API_DOC_PATH} (${md.length} bytes)`);
  }
}
