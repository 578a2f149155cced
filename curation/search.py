"""Text search index: `text~'...'` on a big dataset without scanning every row's text.

DuckDB's full-text extension (`fts`) is not bundled with the Python package and `INSTALL fts`
needs the network, so this is a small inverted word index in plain tables (migration 0025):
`search_vocab` (the dataset's distinct lower-cased word tokens) and `search_postings`
(token -> row key), built on the first text search of a dataset with at least
`MIN_ROWS_FOR_INDEX` rows and extended for rows added since (rows never change).

A search keeps its exact meaning (case-insensitive substring of instruction, response or
system): the index only narrows the rows to check. A row containing the query must contain
every whole word inside the query, a word ending with the query's first word and one starting
with its last (a one-word query: a word containing it). The rarest of those words gives the
candidates (whole words and prefixes are looked up first: the vocabulary is stored in token
order, so those are range reads), and the usual ILIKE then runs on the candidates alone.
"""

from __future__ import annotations

import duckdb

from curation.filters import Condition, compile_conditions

MIN_ROWS_FOR_INDEX = 20_000
MAX_CANDIDATE_SHARE = 0.3  # above this share of rows, checking candidates is no faster
TEXT_FIELDS = ("text", "instruction", "response", "system")
# word tokens: runs of letters and digits (any script), lower-cased
TOKEN_SPLIT = "[^\\p{L}\\p{N}]+"
_TOKENS_SQL = f"list_filter(regexp_split_to_array(lower(?), '{TOKEN_SPLIT}'), lambda t: t <> '')"


def ensure_index(con: duckdb.DuckDBPyConnection, dataset: str) -> bool:
    """Index the dataset's rows not indexed yet; False when it is too small to need one."""
    if _row_count(con, dataset) < MIN_ROWS_FOR_INDEX:
        return False
    state = con.execute("SELECT max_rid FROM search_state WHERE dataset = ?", [dataset]).fetchone()
    done = state[0] if state else 0
    top = con.execute("SELECT max(rid) FROM rows WHERE dataset = ? AND rid > ?",
                      [dataset, done]).fetchone()[0]
    if top is None:
        return True
    _index_rows(con, dataset, done, top)
    return True


def _index_rows(con: duckdb.DuckDBPyConnection, dataset: str, after: int, upto: int) -> None:
    con.execute("BEGIN")
    try:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _tok AS
            SELECT DISTINCT rid, unnest(regexp_split_to_array(lower(concat_ws(chr(10), system,
                   instruction, response)), '{TOKEN_SPLIT}')) AS token
            FROM rows WHERE dataset = ? AND rid > ? AND rid <= ?""", [dataset, after, upto])
        con.execute("DELETE FROM _tok WHERE token = ''")
        con.execute("""
            UPDATE search_vocab v SET df = v.df + n.n
            FROM (SELECT token, count(*) AS n FROM _tok GROUP BY token) n
            WHERE v.dataset = ? AND v.token = n.token""", [dataset])
        con.execute("""
            INSERT INTO search_vocab
            SELECT ?, (SELECT coalesce(max(tid), 0) FROM search_vocab WHERE dataset = ?)
                      + row_number() OVER (ORDER BY token), token, n
            FROM (SELECT token, count(*) AS n FROM _tok GROUP BY token)
            WHERE token NOT IN (SELECT token FROM search_vocab WHERE dataset = ?)
            ORDER BY token""",
                    [dataset, dataset, dataset])
        con.execute("""
            INSERT INTO search_postings
            SELECT ?, v.tid, t.rid FROM _tok t
            JOIN (SELECT tid, token FROM search_vocab WHERE dataset = ?) v USING (token)
            ORDER BY v.tid, t.rid""", [dataset, dataset])
        con.execute("INSERT OR REPLACE INTO search_state VALUES (?, ?)", [dataset, upto])
        con.execute("DROP TABLE _tok")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def query_words(con: duckdb.DuckDBPyConnection, text: str) -> list[tuple[str, str]]:
    """(how, word) pairs a row containing `text` must all match among its tokens: "exact" for
    a word inside the query, "prefix" for its last word (the token may go on), "suffix" for
    its first, "infix" for a one-word query."""
    tokens = con.execute(f"SELECT {_TOKENS_SQL}", [str(text)]).fetchone()[0] or []
    if len(tokens) <= 1:
        return [("infix", t) for t in tokens]
    return [("suffix", tokens[0]), *(("exact", t) for t in tokens[1:-1]), ("prefix", tokens[-1])]


def _like_escape(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _vocab_test(how: str, word: str) -> tuple[str, list]:
    """WHERE test on search_vocab.token; exact and prefix tests are ranges that the token
    order of the vocabulary lets DuckDB answer from few row groups."""
    if how == "exact":
        return "token = ?", [word]
    if how == "prefix":
        upper = word[:-1] + chr(ord(word[-1]) + 1)
        return "token >= ? AND token < ?", [word, upper]
    pattern = "%" + _like_escape(word) + ("%" if how == "infix" else "")
    return "token LIKE ? ESCAPE '\\'", [pattern]


ORDER = {"exact": 0, "prefix": 1, "suffix": 2, "infix": 3}  # cheapest lookups first
GOOD_ENOUGH = 2_000  # candidate rows: stop looking for a rarer word


def candidates(con: duckdb.DuckDBPyConnection, dataset: str,
               conditions: list[Condition], table: str = "_text_candidates") -> str | None:
    """Create TEMP `table(rid)` holding a superset of the rows matching every positive text
    condition (`~` on text/instruction/response/system); None when the index cannot help
    (no such condition, a dataset too small to index, a query without a word, or words so
    common that a scan is as quick)."""
    texts = [c.value for c in conditions if is_indexed_condition(c)]
    if not texts or not ensure_index(con, dataset):
        return None
    words = sorted((w for text in texts for w in query_words(con, text)),
                   key=lambda w: ORDER[w[0]])
    best: tuple[int, list[int]] | None = None
    for how, word in words:
        test, params = _vocab_test(how, word)
        got = con.execute(f"SELECT tid, df FROM search_vocab WHERE dataset = ? AND {test}",
                          [dataset, *params]).fetchall()
        n = sum(df for _, df in got)
        if best is None or n < best[0]:
            best = (n, [tid for tid, _ in got])
        if best[0] <= GOOD_ENOUGH:
            break
    if best is None or best[0] > MAX_CANDIDATE_SHARE * _row_count(con, dataset):  # scan
        return None
    tids = best[1]
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT DISTINCT rid FROM search_postings "
                "WHERE dataset = ? AND tid BETWEEN ? AND ? AND list_contains(?, tid)",
                [dataset, min(tids, default=0), max(tids, default=-1), tids])
    return table


def is_indexed_condition(c: Condition) -> bool:
    return c.op == "~" and c.field in TEXT_FIELDS and isinstance(c.value, str)


def narrow(con: duckdb.DuckDBPyConnection, dataset: str,
           conditions: list[Condition]) -> tuple[list[Condition], list[int] | None]:
    """(the conditions left to check, the sorted row keys matching every indexed text
    condition) or (conditions, None) when the index cannot help.

    The text conditions are checked here on the candidate rows only, fetched by row key
    (a join on the integer key is what lets DuckDB skip reading the other rows' text)."""
    cand = candidates(con, dataset, conditions)
    if cand is None:
        return conditions, None
    rids = [r for (r,) in con.execute(f"SELECT rid FROM {cand} ORDER BY rid").fetchall()]
    text = [c for c in conditions if is_indexed_condition(c)]
    rest = [c for c in conditions if not is_indexed_condition(c)]
    if not rids:
        return rest, []
    # a join with the key list: DuckDB then reads only the row groups holding those keys
    con.execute("CREATE OR REPLACE TEMP TABLE _text_rows AS SELECT r.rid, r.instruction, "
                "r.response, r.system FROM rows r JOIN (SELECT unnest(?) AS rid) c "
                "ON c.rid = r.rid WHERE r.dataset = ?", [rids, dataset])
    comp = compile_conditions(text, dataset, {})
    got = con.execute(f"SELECT rid FROM _text_rows r WHERE {comp.where} ORDER BY rid",
                      comp.where_params).fetchall()
    return rest, [r for (r,) in got]


def _row_count(con: duckdb.DuckDBPyConnection, dataset: str) -> int:
    return con.execute("SELECT count(*) FROM rows WHERE dataset = ?", [dataset]).fetchone()[0]


