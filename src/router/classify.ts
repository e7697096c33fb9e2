/**
 * Is this statement text a read, may the session move afterwards, does it
 * open or end a transaction? Pure functions over the syntax tree that the
 * real PostgreSQL parser (libpg-query) produces; no I/O. Anything not known
 * to be a read is a write: a wrong "write" costs a trip to the primary, a
 * wrong "read" an error on a replica.
 */

export type TxControl = 'begin' | 'begin_read_only' | 'begin_read_write' | 'set_read_only' | 'end' | null;
export type RouteSetting = 'primary' | 'replica' | 'auto';

export interface Classification {
  /** The statements need the primary. */
  readonly write: boolean;
  /** Why, in a few words (for logs and tests). */
  readonly reason: string;
  /** The session state the text creates (it then stays on its server), or null. */
  readonly pin: string | null;
  /** Transaction control, when the text is exactly one such statement; 'begin' etc. inside a longer text count as a write. */
  readonly tx: TxControl;
  /** Functions called, lower case, for a volatility check when the text is otherwise a read. */
  readonly functions: readonly string[];
  /** `SET pgmaestro.route = …` / `RESET pgmaestro.route` when the text is exactly that. */
  readonly route: RouteSetting | null;
  /** `/* pgmaestro:primary *\/` or `/* pgmaestro:replica *\/` in the text. */
  readonly hint: 'primary' | 'replica' | null;
  /** A COPY FROM STDIN among the statements: the server then reads CopyData, and nothing may be sent behind it. */
  readonly copyIn?: boolean;
}

type Node = Record<string, unknown>;

/**
 * The parser refused the text: send it to the primary, whose error the client
 * then gets; except `SET pgmaestro.route TO primary` (PRIMARY is a reserved
 * word, so PostgreSQL's grammar wants it quoted), which the router takes too.
 */
export function unparsable(sql: string): Classification {
  const m = /^\s*SET\s+(?:SESSION\s+)?pgmaestro\.route\s*(?:=|TO)\s*'?(primary|replica|auto)'?\s*;?\s*$/i.exec(sql);
  if (m) return { write: false, reason: `SET pgmaestro.route = ${m[1].toLowerCase()}`, pin: null, tx: null, functions: [], route: m[1].toLowerCase() as RouteSetting, hint: null };
  return { write: true, reason: 'the parser rejects it', pin: null, tx: null, functions: [], route: null, hint: hintOf(sql), copyIn: /\bcopy\b/i.test(sql) };
}

export function hintOf(sql: string): 'primary' | 'replica' | null {
  const m = /\/\*\s*pgmaestro:(primary|replica)\s*\*\//i.exec(sql);
  return m ? (m[1].toLowerCase() as 'primary' | 'replica') : null;
}

/**
 * Classifies a statement text with `parse` (libpg-query's parseSync): a text
 * the parser rejects goes to the primary, whose error the client then gets.
 */
export function classifyText(sql: string, parse: (sql: string) => { stmts?: readonly { stmt?: unknown }[] }): Classification {
  let stmts: readonly { stmt?: unknown }[];
  if (sql.trim() === '') return classify(sql, []);
  try {
    stmts = parse(sql).stmts ?? [];
  } catch {
    return unparsable(sql);
  }
  return classify(sql, stmts);
}

/** Classifies a parsed text: `stmts` is libpg-query's ParseResult.stmts. */
export function classify(sql: string, stmts: readonly { stmt?: unknown }[]): Classification {
  const hint = hintOf(sql);
  if (stmts.length === 0) return { write: false, reason: 'empty', pin: null, tx: null, functions: [], route: null, hint };
  const parts = stmts.map((s) => statement((s.stmt ?? {}) as Node));
  if (parts.length === 1) return { ...parts[0], hint };
  const write = parts.find((p) => p.write || p.tx !== null);
  return {
    write: write !== undefined,
    reason: write ? (write.tx ? 'transaction control among several statements' : write.reason) : 'reads only',
    pin: parts.find((p) => p.pin)?.pin ?? null,
    tx: null,
    functions: [...new Set(parts.flatMap((p) => p.functions))],
    route: null,
    hint,
    copyIn: parts.some((p) => p.copyIn),
  };
}

type Part = Omit<Classification, 'hint'>;

const READ: Omit<Part, 'reason' | 'functions'> = { write: false, pin: null, tx: null, route: null };
const write = (reason: string, pin: string | null = null): Part => ({ write: true, reason, pin, tx: null, functions: [], route: null });

function statement(stmt: Node): Part {
  const [type] = Object.keys(stmt);
  const body = (stmt[type] ?? {}) as Node;
  switch (type) {
    case 'SelectStmt':
      return select(body);
    case 'VariableShowStmt':
      return { ...READ, reason: 'SHOW', functions: [] };
    case 'ExplainStmt': {
      // ANALYZE with no argument is on; an argument the router cannot read counts as on (the safe side)
      const analyze = ((body.options as Node[] | undefined) ?? []).some((o) => defName(o) === 'analyze' && defBool(o) !== false);
      if (!analyze) return { ...READ, reason: 'EXPLAIN without ANALYZE', functions: [] };
      const inner = statement((body.query ?? {}) as Node);
      return { ...inner, reason: `EXPLAIN ANALYZE of ${inner.reason}` };
    }
    case 'TransactionStmt':
      return transaction(body);
    case 'VariableSetStmt':
      return variableSet(body);
    case 'ListenStmt':
      return write('LISTEN', 'LISTEN');
    case 'UnlistenStmt':
      return { ...READ, reason: 'UNLISTEN', functions: [] };
    case 'DeclareCursorStmt': {
      const hold = ((Number(body.options) || 0) & 0x20) !== 0; // CURSOR_OPT_HOLD
      const inner = statement((body.query ?? {}) as Node);
      return hold ? { ...inner, write: true, reason: 'a WITH HOLD cursor', pin: 'a WITH HOLD cursor' } : { ...inner, reason: `a cursor over ${inner.reason}` };
    }
    case 'PrepareStmt':
      return write('PREPARE', 'a prepared statement (PREPARE)');
    case 'LoadStmt':
      return write('LOAD', 'a loaded library');
    case 'CreateStmt':
    case 'CreateTableAsStmt':
    case 'ViewStmt':
    case 'CreateSeqStmt': {
      const rel = (body.relation ?? (body.into as Node | undefined)?.rel ?? body.view ?? body.sequence) as Node | undefined;
      const temp = rel?.relpersistence === 't';
      return write(temp ? 'creates a temporary object' : type.replace(/Stmt$/, ''), temp ? 'a temporary table' : null);
    }
    case 'CopyStmt':
      if (body.is_from) return { ...write('COPY FROM'), copyIn: true };
      if (body.query) {
        const inner = statement(body.query as Node);
        return { ...inner, reason: `COPY of ${inner.reason}` };
      }
      return { ...READ, reason: 'COPY TO', functions: [] };
    default:
      // DML, DDL, DO, CALL, VACUUM, LOCK, NOTIFY, PREPARE TRANSACTION, … and anything new.
      return write(type.replace(/Stmt$/, ''));
  }
}

function select(body: Node): Part {
  const why = writingSelect(body);
  const functions = new Set<string>();
  collectFunctions(body, functions);
  const pin = [...functions].find((f) => SESSION_FUNCTIONS.has(f));
  if (pin) return { write: true, reason: `calls ${pin}()`, pin: `${pin}()`, tx: null, functions: [...functions], route: null };
  const writer = [...functions].find((f) => WRITING_FUNCTIONS.has(f));
  if (writer) return { write: true, reason: `calls ${writer}()`, pin: null, tx: null, functions: [...functions], route: null };
  if (why) return { write: true, reason: why, pin: null, tx: null, functions: [...functions], route: null };
  return { ...READ, reason: 'SELECT', functions: [...functions] };
}

/** Why a SELECT writes (or locks), or null: FOR UPDATE/SHARE anywhere, SELECT INTO, a data-modifying CTE. */
function writingSelect(n: unknown): string | null {
  if (Array.isArray(n)) {
    for (const x of n) {
      const w = writingSelect(x);
      if (w) return w;
    }
    return null;
  }
  if (n === null || typeof n !== 'object') return null;
  const o = n as Node;
  for (const [k, v] of Object.entries(o)) {
    if (k === 'lockingClause' && Array.isArray(v) && v.length > 0) return 'SELECT … FOR UPDATE/SHARE';
    if (k === 'intoClause' && v) return 'SELECT INTO';
    if ((k === 'InsertStmt' || k === 'UpdateStmt' || k === 'DeleteStmt' || k === 'MergeStmt') && v) return `a data-modifying CTE (${k.replace(/Stmt$/, '').toUpperCase()})`;
    const w = writingSelect(v);
    if (w) return w;
  }
  return null;
}

function collectFunctions(n: unknown, out: Set<string>): void {
  if (Array.isArray(n)) {
    for (const x of n) collectFunctions(x, out);
    return;
  }
  if (n === null || typeof n !== 'object') return;
  const o = n as Node;
  const call = o.FuncCall as Node | undefined;
  if (call) {
    const names = ((call.funcname as Node[] | undefined) ?? []).map((p) => String((p.String as Node | undefined)?.sval ?? ''));
    const name = names[names.length - 1]?.toLowerCase();
    if (name) out.add(name);
  }
  for (const v of Object.values(o)) if (v !== null && typeof v === 'object') collectFunctions(v, out);
}

/** Functions whose effect outlives the transaction in the session. */
const SESSION_FUNCTIONS = new Set(['pg_advisory_lock', 'pg_advisory_lock_shared', 'pg_try_advisory_lock', 'pg_try_advisory_lock_shared', 'set_config', 'dblink_connect']);

/**
 * Functions that write (or need a transaction ID) whatever the catalog says,
 * so they never depend on the volatility lookup: a standby refuses them all.
 */
const WRITING_FUNCTIONS = new Set(['nextval', 'setval', 'txid_current', 'pg_current_xact_id', 'pg_notify', 'lo_create', 'lo_creat', 'lo_import', 'lo_unlink', 'lo_put', 'lo_from_bytea', 'pg_switch_wal', 'pg_create_restore_point']);

function transaction(body: Node): Part {
  const kind = String(body.kind);
  if (kind === 'TRANS_STMT_BEGIN' || kind === 'TRANS_STMT_START') {
    const ro = readOnlyOption(body.options as Node[] | undefined);
    const tx: TxControl = ro === true ? 'begin_read_only' : ro === false ? 'begin_read_write' : 'begin';
    return { write: ro !== true, reason: ro === true ? 'BEGIN READ ONLY' : 'BEGIN', pin: null, tx, functions: [], route: null };
  }
  if (kind === 'TRANS_STMT_COMMIT' || kind === 'TRANS_STMT_ROLLBACK') return { write: false, reason: 'end of transaction', pin: null, tx: 'end', functions: [], route: null };
  if (kind === 'TRANS_STMT_PREPARE' || kind === 'TRANS_STMT_COMMIT_PREPARED' || kind === 'TRANS_STMT_ROLLBACK_PREPARED') return write('two-phase commit');
  return { ...READ, reason: 'savepoint', functions: [] };
}

function variableSet(body: Node): Part {
  const name = String(body.name ?? '').toLowerCase();
  const kind = String(body.kind);
  if (name === 'pgmaestro.route') {
    if (kind === 'VAR_RESET' || kind === 'VAR_SET_DEFAULT') return { ...READ, reason: 'RESET pgmaestro.route', route: 'auto', functions: [] };
    const v = constString(((body.args as Node[] | undefined) ?? [])[0])?.toLowerCase();
    if (v === 'primary' || v === 'replica' || v === 'auto') return { ...READ, reason: `SET pgmaestro.route = ${v}`, route: v, functions: [] };
    return write(`SET pgmaestro.route to an unknown value`);
  }
  if (name === 'transaction') {
    const ro = readOnlyOption(body.args as Node[] | undefined);
    return { ...READ, reason: 'SET TRANSACTION', tx: ro === true ? 'set_read_only' : null, functions: [] };
  }
  if (body.is_local) return { ...READ, reason: 'SET LOCAL', functions: [] };
  return write(`SET ${name || 'ALL'}`, `SET ${name || 'ALL'}`);
}

function readOnlyOption(options: Node[] | undefined): boolean | null {
  for (const o of options ?? []) {
    if (defName(o) === 'transaction_read_only') {
      const b = defBool(o);
      if (b !== null) return b;
    }
  }
  return null;
}

function defName(o: Node): string | null {
  const d = o.DefElem as Node | undefined;
  return d ? String(d.defname) : null;
}

/**
 * The boolean of a DefElem's argument as PostgreSQL's defGetBoolean reads it
 * (true/false/on/off, 1/0, an A_Const of those); null when there is none.
 */
function defBool(o: Node): boolean | null {
  const arg = (o.DefElem as Node | undefined)?.arg as Node | undefined;
  if (!arg) return null;
  const c = (arg.A_Const as Node | undefined) ?? arg;
  if (c.ival !== undefined) return Number((c.ival as Node).ival ?? 0) !== 0;
  if (c.Integer !== undefined) return Number((c.Integer as Node).ival ?? 0) !== 0;
  if (c.boolval !== undefined) return Boolean((c.boolval as Node).boolval);
  if (c.Boolean !== undefined) return Boolean((c.Boolean as Node).boolval);
  const text = ((c.sval as Node | undefined)?.sval ?? (c.String as Node | undefined)?.sval) as string | undefined;
  if (typeof text === 'string') {
    const t = text.toLowerCase();
    if (t === 'true' || t === 'on') return true;
    if (t === 'false' || t === 'off') return false;
  }
  return null;
}

function constString(o: Node | undefined): string | null {
  const c = o?.A_Const as Node | undefined;
  if (!c) return null;
  const s = (c.sval as Node | undefined)?.sval;
  return typeof s === 'string' ? s : null;
}
