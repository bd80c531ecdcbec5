// A strict JSON parser for untrusted file headers. JSON.parse cannot serve here: it
// silently keeps the last of two duplicate keys (so two tensors could claim one name),
// turns 3.0 and 3e0 into the integer 3, and assigns "__proto__" keys to the prototype.

/** A number exactly as written, so callers can insist on integer literals. */
export class JsonNumber {
  constructor(readonly text: string) {}

  get value(): number {
    return Number(this.text);
  }

  /** True for integer literals only (no fraction, no exponent). */
  get isIntegerLiteral(): boolean {
    return /^-?(0|[1-9][0-9]*)$/.test(this.text);
  }
}

export type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | JsonObject;

/** Objects are Maps: key order is kept and any key, "__proto__" included, is plain data. */
export type JsonObject = Map<string, JsonValue>;

export class JsonParseError extends Error {
  /** Index in the text where parsing failed. */
  readonly position: number;
  /** Set when the text is well-formed but an object repeats this key. */
  readonly duplicateKey: string | undefined;
  /** Keys leading to the object holding the duplicate key ([] for the top level). */
  readonly keyPath: readonly string[];

  constructor(message: string, position: number, duplicate?: { key: string; path: readonly string[] }) {
    super(message);
    this.name = "JsonParseError";
    this.position = position;
    this.duplicateKey = duplicate?.key;
    this.keyPath = duplicate?.path ?? [];
  }
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);

/**
 * Parses one JSON value (RFC 8259) surrounded by optional whitespace. Throws JsonParseError
 * on malformed text, on duplicate keys, and when nesting exceeds maxDepth (a bound that
 * keeps hostile input such as "[[[[..." from exhausting the stack).
 */
export function parseStrictJson(text: string, maxDepth = 64): JsonValue {
  let pos = 0;
  const path: string[] = [];

  const fail = (what: string): never => {
    const shown = pos < text.length ? JSON.stringify(text.slice(pos, pos + 12)) : "end of text";
    throw new JsonParseError(`${what} at character ${pos} (found ${shown})`, pos);
  };

  const skipWs = (): void => {
    while (pos < text.length && WS.has(text.charCodeAt(pos))) pos++;
  };

  const parseString = (): string => {
    // Caller has checked the opening quote.
    pos++;
    let out = "";
    let runStart = pos;
    for (;;) {
      if (pos >= text.length) fail("unterminated string");
      const c = text.charCodeAt(pos);
      if (c === 0x22) {
        out += text.slice(runStart, pos);
        pos++;
        return out;
      }
      if (c < 0x20) fail("control character in string");
      if (c !== 0x5c) {
        pos++;
        continue;
      }
      out += text.slice(runStart, pos);
      const e = text[pos + 1];
      pos += 2;
      switch (e) {
        case '"':
          out += '"';
          break;
        case "\\":
          out += "\\";
          break;
        case "/":
          out += "/";
          break;
        case "b":
          out += "\b";
          break;
        case "f":
          out += "\f";
          break;
        case "n":
          out += "\n";
          break;
        case "r":
          out += "\r";
          break;
        case "t":
          out += "\t";
          break;
        case "u": {
          const hex = text.slice(pos, pos + 4);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail("bad \\u escape");
          out += String.fromCharCode(Number.parseInt(hex, 16));
          pos += 4;
          break;
        }
        default:
          pos -= 2;
          fail("bad escape in string");
      }
      runStart = pos;
    }
  };

  const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

  const parseNumber = (): JsonNumber => {
    NUMBER.lastIndex = pos;
    const m = NUMBER.exec(text);
    if (m === null) return fail("bad number");
    pos += m[0].length;
    return new JsonNumber(m[0]);
  };

  const literal = <T>(word: string, value: T): T => {
    if (text.startsWith(word, pos)) {
      pos += word.length;
      return value;
    }
    return fail("unexpected token");
  };

  const parseValue = (depth: number): JsonValue => {
    skipWs();
    const c = text[pos];
    if (c === "{" || c === "[") {
      if (depth >= maxDepth) fail(`nesting deeper than ${maxDepth}`);
      return c === "{" ? parseObject(depth + 1) : parseArray(depth + 1);
    }
    if (c === '"') return parseString();
    if (c === "t") return literal("true", true);
    if (c === "f") return literal("false", false);
    if (c === "n") return literal("null", null);
    if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) return parseNumber();
    return fail("expected a JSON value");
  };

  const parseArray = (depth: number): JsonValue[] => {
    pos++;
    const out: JsonValue[] = [];
    skipWs();
    if (text[pos] === "]") {
      pos++;
      return out;
    }
    for (;;) {
      out.push(parseValue(depth));
      skipWs();
      const c = text[pos];
      pos++;
      if (c === "]") return out;
      if (c !== ",") {
        pos--;
        fail("expected ',' or ']' in array");
      }
    }
  };

  const parseObject = (depth: number): JsonObject => {
    pos++;
    const out: JsonObject = new Map();
    skipWs();
    if (text[pos] === "}") {
      pos++;
      return out;
    }
    for (;;) {
      skipWs();
      if (text[pos] !== '"') fail("expected a string key");
      const keyPos = pos;
      const key = parseString();
      if (out.has(key)) {
        throw new JsonParseError(`duplicate key ${JSON.stringify(key)} at character ${keyPos}`, keyPos, {
          key,
          path: [...path],
        });
      }
      skipWs();
      if (text[pos] !== ":") fail("expected ':' after key");
      pos++;
      path.push(key);
      out.set(key, parseValue(depth));
      path.pop();
      skipWs();
      const c = text[pos];
      pos++;
      if (c === "}") return out;
      if (c !== ",") {
        pos--;
        fail("expected ',' or '}' in object");
      }
    }
  };

  const value = parseValue(0);
  skipWs();
  if (pos !== text.length) fail("unexpected text after the JSON value");
  return value;
}
