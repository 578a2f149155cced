"""Input formats: detect which one a file uses and normalize it to canonical rows in SQL.

Every source is first staged as a table `(line BIGINT, j JSON)` — one JSON object per record —
so one set of SQL expressions normalizes JSONL, JSON, CSV, Parquet and HF datasets alike,
without building Python lists of rows. A mapping says which source key feeds which canonical
field; user mappings override the format's defaults.
"""

from __future__ import annotations

import duckdb

from curation.errors import StudioError

# canonical field -> default source key, per format
FORMATS: dict[str, dict[str, str]] = {
    "alpaca": {"instruction": "instruction", "input": "input", "response": "output",
               "system": "system"},
    "prompt_completion": {"instruction": "prompt", "response": "completion", "system": "system"},
    "qa": {"instruction": "question", "response": "answer", "system": "system"},
    "chat": {"messages": "messages"},
    "sharegpt": {"conversations": "conversations"},
}
COMMON_FIELDS = {"id": "id", "category": "category", "tags": "tags"}
CANONICAL_FIELDS = {"instruction", "input", "response", "system", "messages", "conversations",
                    "id", "category", "tags"}
REQUIRED = {"alpaca": ("instruction", "response"), "prompt_completion": ("instruction", "response"),
            "qa": ("instruction", "response"), "chat": ("messages",),
            "sharegpt": ("conversations",)}
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "bard": "assistant", "bing": "assistant",
                  "model": "assistant", "system": "system"}


def json_path(key: str) -> str:
    """A JSON path for a top-level key, quoted so any key name is safe (passed as a ? value)."""
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def detect_format(keys: set[str], first_item_keys: dict[str, set[str]]) -> str:
    """Pick the format from the record keys (first records); raise when nothing fits."""
    for conv_key in ("messages", "conversations"):
        if conv_key in keys:
            item = first_item_keys.get(conv_key, set())
            return "sharegpt" if {"from", "value"} <= item else "chat"
    if "instruction" in keys and ("output" in keys or "response" in keys):
        return "alpaca"
    if {"prompt", "completion"} <= keys:
        return "prompt_completion"
    if {"question", "answer"} <= keys:
        return "qa"
    raise StudioError(
        f"cannot detect the format from the columns {sorted(keys)}: expected alpaca "
        "(instruction/input/output), prompt/completion, question/answer, chat `messages` or "
        "ShareGPT `conversations`; pass --format and --mapping"
    )


def resolve_mapping(fmt: str, keys: set[str], first_item_keys: dict[str, set[str]],
                    user_mapping: dict[str, str] | None) -> dict[str, str]:
    """The format's default mapping, adjusted to the file's keys, then the user's overrides."""
    if fmt not in FORMATS:
        raise StudioError(f"unknown format {fmt!r}; choose one of {sorted(FORMATS)}")
    user_mapping = dict(user_mapping or {})
    bad = set(user_mapping) - CANONICAL_FIELDS
    if bad:
        raise StudioError(f"mapping names unknown canonical field(s) {sorted(bad)}; "
                          f"allowed: {sorted(CANONICAL_FIELDS)}")
    mapping = dict(FORMATS[fmt])
    if fmt == "alpaca" and "output" not in keys and "response" in keys:
        mapping["response"] = "response"
    if fmt == "chat" and "messages" not in keys and "conversations" in keys:
        mapping["messages"] = "conversations"
    if fmt == "sharegpt" and "conversations" not in keys and "messages" in keys:
        mapping["conversations"] = "messages"
    mapping.update(COMMON_FIELDS)
    mapping.update(user_mapping)
    # optional fields only when the source has them (or the user asked for them)
    required = set(REQUIRED[fmt])
    return {k: v for k, v in mapping.items()
            if k in required or k in user_mapping or v in keys}


def staged_keys(con: duckdb.DuckDBPyConnection, stage: str = "_stage",
                sample: int = 500) -> tuple[set[str], dict[str, set[str]]]:
    """Keys of the first records, and the keys of the first item of list-valued columns."""
    rows = con.execute(
        f"SELECT DISTINCT unnest(json_keys(j)) FROM (SELECT j FROM {stage} ORDER BY line LIMIT {sample})"
    ).fetchall()
    keys = {r[0] for r in rows}
    item_keys: dict[str, set[str]] = {}
    for conv in ("messages", "conversations"):
        if conv in keys:
            got = con.execute(
                f"SELECT DISTINCT unnest(json_keys(j -> ? -> 0)) FROM "
                f"(SELECT j FROM {stage} ORDER BY line LIMIT {sample})", [json_path(conv)]
            ).fetchall()
            item_keys[conv] = {r[0] for r in got if r[0] is not None}
    return keys, item_keys


def normalize_sql(fmt: str, mapping: dict[str, str], stage: str = "_stage") -> tuple[str, list]:
    """SELECT producing canonical columns + `err` (first invalid field) for each staged record."""
    params: list = []

    def path(field: str) -> str:  # numbered parameter: SQL text order does not matter
        params.append(json_path(mapping[field]))
        return f"${len(params)}"

    def lit(value: str) -> str:
        params.append(value)
        return f"CAST(${len(params)} AS VARCHAR)"

    def get(field: str) -> str:
        if field not in mapping:
            return "CAST(NULL AS VARCHAR)"
        return f"json_extract_string(j, {path(field)})"

    if fmt in ("chat", "sharegpt"):
        conv_field = "messages" if fmt == "chat" else "conversations"
        conv = path(conv_field)
        if fmt == "chat":
            msgs = f"from_json(j -> {conv}, '[{{\"role\":\"VARCHAR\",\"content\":\"VARCHAR\"}}]')"
            msgs = f"list_transform({msgs}, lambda m: {{'role': lower(m.role), 'content': m.content}})"
        else:
            raw = f"from_json(j -> {conv}, '[{{\"from\":\"VARCHAR\",\"value\":\"VARCHAR\"}}]')"
            cases = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in SHAREGPT_ROLES.items())
            msgs = (f"list_transform({raw}, lambda m: {{'role': CASE lower(m.\"from\") {cases} "
                    f"ELSE NULL END, 'content': m.value}})")
        inner = f"""
            SELECT line, j, {msgs} AS msgs FROM {stage}"""
        body = f"""
            SELECT line, j, msgs,
              list_filter(msgs, lambda m: m.role = 'system')[1].content AS system,
              list_filter(msgs, lambda m: m.role = 'user')[1].content AS instruction,
              list_filter(msgs, lambda m: m.role = 'assistant')[-1].content AS response,
              CASE
                WHEN msgs IS NULL OR len(msgs) = 0 THEN {lit(mapping[conv_field] + ': missing or empty')}
                WHEN len(list_filter(msgs, lambda m: m.role IS NULL
                     OR m.role NOT IN ('system', 'user', 'assistant'))) > 0
                  THEN {lit(mapping[conv_field] + ': role must be system, user or assistant')}
                WHEN len(list_filter(msgs, lambda m: m.content IS NULL)) > 0
                  THEN {lit(mapping[conv_field] + ': a message has no content')}
                WHEN len(list_filter(msgs, lambda m: m.role = 'user')) = 0
                  THEN {lit(mapping[conv_field] + ': no user turn')}
                WHEN len(list_filter(msgs, lambda m: m.role = 'assistant')) = 0
                  THEN {lit(mapping[conv_field] + ': no assistant turn')}
              END AS err
            FROM ({inner})"""
        messages_expr = "to_json(msgs)"
        n_turns = "len(list_filter(msgs, lambda m: m.role <> 'system'))"
    else:
        instr, inp, resp, system = get("instruction"), get("input"), get("response"), get("system")
        body = f"""
            SELECT line, j,
              nullif({system}, '') AS system,
              CASE WHEN coalesce(inp, '') <> '' THEN instr || chr(10) || chr(10) || inp
                   ELSE instr END AS instruction,
              resp AS response,
              CASE WHEN instr IS NULL THEN {lit(mapping['instruction'] + ': missing required field')}
                   WHEN resp IS NULL THEN {lit(mapping['response'] + ': missing required field')}
              END AS err
            FROM (SELECT *, {instr} AS instr, {inp} AS inp, {resp} AS resp FROM {stage})"""
        messages_expr = ("to_json(CASE WHEN system IS NULL THEN "
                         "[{'role': 'user', 'content': instruction}, "
                         "{'role': 'assistant', 'content': response}] "
                         "ELSE [{'role': 'system', 'content': system}, "
                         "{'role': 'user', 'content': instruction}, "
                         "{'role': 'assistant', 'content': response}] END)")
        n_turns = "2"
    id_expr, cat_expr = get("id"), get("category")
    tags_expr = "CAST(NULL AS VARCHAR[])"
    if "tags" in mapping:
        t = path("tags")
        tags_expr = (f"CASE WHEN json_type(j -> {t}) = 'ARRAY' THEN from_json(j -> {t}, '[\"VARCHAR\"]') "
                     f"WHEN json_type(j -> {t}) = 'VARCHAR' THEN string_split(j ->> {t}, ',') END")
    sql = f"""
        SELECT line, {messages_expr} AS messages, system, instruction, response,
               {n_turns} AS n_turns, {id_expr} AS src_id, {cat_expr} AS category,
               {tags_expr} AS tags, err
        FROM ({body})"""
    return sql, params
