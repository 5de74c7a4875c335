#!/usr/bin/env node
// Writes src/api.ts, the types of every request and answer of the appliance's API,
// from its OpenAPI description: what `queueapp openapi` prints (the default), a file
// named by --from FILE, or a running appliance's /openapi.json named by --from URL
// (with the token in QUEUEAPP_TOKEN, if it has one).
//
//   node scripts/generate-types.js            # write src/api.ts
//   node scripts/generate-types.js --check    # exit 1 when src/api.ts differs
//
// The client is typed by these and nothing else, so a change of the API that the
// client has not followed fails its build; CI runs --check against the server.
"use strict";
const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const TARGET = path.join(__dirname, "..", "src", "api.ts");

async function readDescription(from) {
  if (!from) {
    const python = process.env.PYTHON || "python3";
    return JSON.parse(execFileSync(python, ["-m", "queueapp", "openapi"], { encoding: "utf8" }));
  }
  if (/^https?:\/\//.test(from)) {
    const token = process.env.QUEUEAPP_TOKEN;
    const answer = await fetch(from, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    if (!answer.ok) throw new Error(`${from}: HTTP ${answer.status}`);
    return answer.json();
  }
  return JSON.parse(fs.readFileSync(from, "utf8"));
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function key(name) {
  return IDENTIFIER.test(name) ? name : JSON.stringify(name);
}

function refName(ref) {
  return ref.replace("#/components/schemas/", "");
}

// One JSON Schema (2020-12, as pydantic writes it) as a TypeScript type. Values the
// schema leaves open (job data, results) are `any`: they are the caller's JSON.
function typeOf(schema, indent = "") {
  if (schema === true || schema === undefined || schema === null) return "any";
  if (schema.$ref) return refName(schema.$ref);
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  // a long list (the time zones) reads better, and accepts a variable, as its type
  if (schema.enum && schema.enum.length > 64) return typeof schema.enum[0] === "string" ? "string" : "number";
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  const union = schema.anyOf || schema.oneOf;
  if (union && schema.properties) {
    // an object whose fields are also constrained together (cron or everyMs)
    const branches = union.map((s) => typeOf({ type: "object", ...s }, indent));
    return `${objectType(schema, indent)} & (${branches.join(" | ")})`;
  }
  if (union) return [...new Set(union.map((s) => typeOf(s, indent)))].join(" | ");
  if (schema.allOf) return schema.allOf.map((s) => typeOf(s, indent)).join(" & ");
  if (Array.isArray(schema.type)) return schema.type.map((t) => typeOf({ ...schema, type: t }, indent)).join(" | ");
  switch (schema.type) {
    case "string": return "string";
    case "integer":
    case "number": return "number";
    case "boolean": return "boolean";
    case "null": return "null";
    case "array": {
      if (schema.prefixItems) return `[${schema.prefixItems.map((s) => typeOf(s, indent)).join(", ")}]`;
      const item = typeOf(schema.items, indent);
      return /[|&]/.test(item) ? `Array<${item}>` : `${item}[]`;
    }
    case "object": return objectType(schema, indent);
    default: return "any";
  }
}

function objectType(schema, indent) {
  const properties = schema.properties || {};
  const names = Object.keys(properties).sort();  // one text whatever order the JSON had
  const extra = schema.additionalProperties;
  if (names.length === 0) {
    if (extra === false) return "Record<string, never>";
    return `Record<string, ${extra && extra !== true ? typeOf(extra, indent) : "any"}>`;
  }
  const required = new Set(schema.required || []);
  const inner = indent + "  ";
  const lines = names.map((name) => {
    const property = properties[name];
    const note = property.description ? `${inner}/** ${property.description.replace(/\*\//g, "* /")} */\n` : "";
    const optional = required.has(name) ? "" : "?";
    return `${note}${inner}${key(name)}${optional}: ${typeOf(property, inner)};`;
  });
  if (extra && extra !== false) lines.push(`${inner}[key: string]: ${extra === true ? "any" : typeOf(extra, inner)};`);
  return `{\n${lines.join("\n")}\n${indent}}`;
}

function schemaOf(content) {
  if (!content) return undefined;
  const json = content["application/json"];
  if (json) return { type: typeOf(json.schema), json: true };
  const [, first] = Object.entries(content)[0];
  return { type: typeOf(first.schema), json: false };
}

function operations(doc) {
  const found = [];
  for (const [route, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const parameters = op.parameters || [];
      const fields = (where) => parameters.filter((p) => p.in === where).map((p) =>
        `${key(p.name)}${p.required ? "" : "?"}: ${typeOf(p.schema)}`);
      const ok = Object.keys(op.responses).filter((status) => status.startsWith("2")).sort();
      const answer = schemaOf(op.responses[ok[0]] && op.responses[ok[0]].content);
      const body = op.requestBody ? schemaOf(op.requestBody.content) : undefined;
      found.push({
        id: op.operationId, method: method.toUpperCase(), route, summary: op.summary || op.description || "",
        pathParams: fields("path"), query: fields("query"), body, answer, ok,
        queued: parameters.some((p) => p.in === "query" && p.name === "queue"),
      });
    }
  }
  return found.sort((a, b) => a.id.localeCompare(b.id));
}

function render(doc) {
  const out = [
    "// Generated by scripts/generate-types.js from queueapp's OpenAPI description.",
    "// Do not edit: run `npm run generate`.",
    "/* eslint-disable */",
    "",
  ];
  for (const [name, schema] of Object.entries(doc.components.schemas).sort(([a], [b]) => a.localeCompare(b))) {
    if (schema.description) out.push(`/** ${schema.description.replace(/\*\//g, "* /").split("\n").join("\n * ")} */`);
    const type = typeOf(schema);
    out.push(type.startsWith("{\n") && type.endsWith("}") ? `export interface ${name} ${type}` : `export type ${name} = ${type};`, "");
  }
  const ops = operations(doc);
  out.push("/** Every operation of the API: its method, path, parameters, body and answer. */");
  out.push("export interface Operations {");
  for (const op of ops) {
    out.push(`  /** ${op.method} ${op.route}: ${op.summary.split("\n")[0].replace(/\*\//g, "* /")} */`);
    out.push(`  ${op.id}: {`);
    out.push(`    pathParams: {${op.pathParams.join("; ")}};`);
    out.push(`    query: {${op.query.join("; ")}};`);
    out.push(`    body: ${op.body ? op.body.type : "undefined"};`);
    out.push(`    answer: ${op.answer ? op.answer.type : "undefined"};`);
    out.push("  };");
  }
  out.push("}", "");
  out.push("/** Where each operation is sent, and how its body and answer travel. */");
  out.push("export const OPERATIONS = {");
  for (const op of ops) {
    const text = (part) => (part && !part.json ? "true" : "false");
    out.push(`  ${op.id}: { method: "${op.method}", path: "${op.route}", textBody: ${text(op.body)}, ` +
      `textAnswer: ${text(op.answer)}, queued: ${op.queued}, ok: [${op.ok.join(", ")}] },`);
  }
  out.push("} as const;", "");
  out.push("export type OperationId = keyof Operations;", "");
  return out.join("\n");
}

async function main() {
  const args = process.argv.slice(2);
  const fromAt = args.indexOf("--from");
  const doc = await readDescription(fromAt >= 0 ? args[fromAt + 1] : undefined);
  const text = render(doc);
  if (args.includes("--check")) {
    const current = fs.existsSync(TARGET) ? fs.readFileSync(TARGET, "utf8") : "";
    if (current !== text) {
      console.error("src/api.ts differs from the appliance's OpenAPI description: run `npm run generate`");
      process.exit(1);
    }
    console.log("src/api.ts matches the appliance's OpenAPI description");
    return;
  }
  fs.writeFileSync(TARGET, text);
  console.log(`wrote ${path.relative(process.cwd(), TARGET)}: ${Object.keys(doc.components.schemas).length} types, ` +
    `${operations(doc).length} operations`);
}

main().catch((error) => { console.error(error.message); process.exit(1); });
