"""Input formats: detect which one a file uses and normalize it to canonical rows in SQL.

Every source is first staged as a table `(line BIGINT, j JSON)` — one JSON object per record —
so one set of SQL expressions normalizes JSONL, JSON, CSV, Parquet and HF datasets alike,
without building Python lists of rows. A mapping says which source key feeds which canonical
field; user mappings override the format's defaults.

Conversations keep every turn whole: content given as a list of parts is joined (text parts,
one per line) with the non-text parts kept in the message as `parts`; tool calls become
`{"role": "assistant", "content": "", "tool_calls": [...]}` and tool results
`{"role": "tool", "content": ...}` (ShareGPT `function_call` / `observation`, OpenAI
`tool_calls` / `tool` and the older `function_call` / `function`); a row's `tools` schema is
kept in the row's metadata. Normalization also flags what it had to change (values coerced to
text, a conversation that starts with the assistant) so the import can count it.
"""

from __future__ import annotations

import duckdb

from kernel.errors import StudioError
from kernel.migrations import plain_messages_sql

# Every import format, in the order detection tries them (CLI choices, the UI's format box).
FORMATS: tuple[str, ...] = ("alpaca", "prompt_completion", "qa", "chat", "sharegpt")
FLAT_FORMATS = ("alpaca", "prompt_completion", "qa")

# canonical field -> default source key, per format
DEFAULT_MAPPINGS: dict[str, dict[str, str]] = {
    "alpaca": {"instruction": "instruction", "input": "input", "response": "output",
               "system": "system"},
    "prompt_completion": {"instruction": "prompt", "response": "completion", "system": "system"},
    "qa": {"instruction": "question", "response": "answer", "system": "system"},
    "chat": {"messages": "messages", "system": "system", "tools": "tools"},
    "sharegpt": {"conversations": "conversations", "system": "system", "tools": "tools"},
}
COMMON_FIELDS = {"id": "id", "category": "category", "tags": "tags", "split": "split"}
CANONICAL_FIELDS = {"instruction", "input", "response", "system", "messages", "conversations",
                    "id", "category", "tags", "tools", "split"}
REQUIRED = {"alpaca": ("instruction", "response"), "prompt_completion": ("instruction", "response"),
            "qa": ("instruction", "response"), "chat": ("messages",),
            "sharegpt": ("conversations",)}
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "bard": "assistant", "bing": "assistant",
                  "model": "assistant", "system": "system", "function_call": "assistant",
                  "observation": "tool", "tool": "tool", "function": "tool"}
CHAT_ROLES = {"system": "system", "user": "user", "assistant": "assistant", "tool": "tool",
              "function": "tool"}
ROLES = ("system", "user", "assistant", "tool")
SPLITS = ("train", "heldout")
PART_SEPARATOR = "\n"  # text parts of one message are joined one per line


def json_path(key: str) -> str:
    """A JSON path for a top-level key, quoted so any key name is safe (passed as a ? value)."""
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_of_keys(keys: set[str], first_item_keys: dict[str, set[str]] | None = None) -> str | None:
    """The format a record with these keys looks like, or None."""
    for conv_key in ("messages", "conversations"):
        if conv_key in keys:
            item = (first_item_keys or {}).get(conv_key, set())
            return "sharegpt" if {"from", "value"} <= item else "chat"
    if "instruction" in keys and ("output" in keys or "response" in keys):
        return "alpaca"
    if {"prompt", "completion"} <= keys:
        return "prompt_completion"
    if {"question", "answer"} <= keys:
        return "qa"
    return None


def detect_format(keys: set[str], first_item_keys: dict[str, set[str]]) -> str:
    """Pick the format from the record keys (first records); raise when nothing fits."""
    fmt = format_of_keys(keys, first_item_keys)
    if fmt is None:
        raise StudioError(
            f"cannot detect the format from the columns {sorted(keys)}: expected alpaca "
            "(instruction/input/output), prompt/completion, question/answer, chat `messages` or "
            "ShareGPT `conversations`; pass --format and --map FIELD=COLUMN "
            "(e.g. --map instruction=q --map response=a)"
        )
    return fmt


def resolve_mapping(fmt: str, keys: set[str], first_item_keys: dict[str, set[str]],
                    user_mapping: dict[str, str] | None) -> dict[str, str]:
    """The format's default mapping, adjusted to the file's keys, then the user's overrides."""
    if fmt not in DEFAULT_MAPPINGS:
        raise StudioError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    user_mapping = dict(user_mapping or {})
    bad = set(user_mapping) - CANONICAL_FIELDS
    if bad:
        raise StudioError(f"--map names unknown canonical field(s) {sorted(bad)}; "
                          f"allowed: {sorted(CANONICAL_FIELDS)}")
    mapping = dict(DEFAULT_MAPPINGS[fmt])
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
    define_macros(con)
    rows = con.execute(
        f"SELECT DISTINCT unnest(json_keys(j)) FROM (SELECT j FROM {stage} ORDER BY line LIMIT {sample})"
    ).fetchall()
    keys = {r[0] for r in rows}
    item_keys: dict[str, set[str]] = {}
    for conv in ("messages", "conversations"):
        if conv in keys:
            got = con.execute(
                f"SELECT DISTINCT unnest(json_keys(json_extract(_as_json(json_extract(j, ?)), 0))) FROM "
                f"(SELECT j FROM {stage} ORDER BY line LIMIT {sample})", [json_path(conv)]
            ).fetchall()
            item_keys[conv] = {r[0] for r in got if r[0] is not None}
    return keys, item_keys


def define_macros(con: duckdb.DuckDBPyConnection) -> None:
    """SQL helpers used by the normalization (temporary: they live with the connection)."""
    # a JSON value that may arrive as a JSON string holding JSON (e.g. glaive's `tools`)
    con.execute("CREATE OR REPLACE TEMP MACRO _as_json(v) AS CASE WHEN json_type(v) = 'NULL' "
                "THEN NULL WHEN json_type(v) = 'VARCHAR' "
                "AND json_valid(v ->> '$') AND left(ltrim(v ->> '$'), 1) IN ('[', '{') "
                "THEN json(v ->> '$') ELSE v END")
    # a list of content parts: objects that each have a `type` or a `text`
    con.execute("""CREATE OR REPLACE TEMP MACRO _is_parts(v) AS coalesce(json_type(v) = 'ARRAY'
        AND json_array_length(v) > 0 AND len(list_filter(from_json(v, '["JSON"]'),
            lambda p: json_type(p) = 'OBJECT' AND (p ->> 'type' IS NOT NULL
                      OR p ->> 'text' IS NOT NULL))) = json_array_length(v), false)""")
    con.execute("CREATE OR REPLACE TEMP MACRO _is_text_part(p) AS "
                "p ->> 'type' = 'text' OR (p ->> 'type' IS NULL AND p ->> 'text' IS NOT NULL)")
    # text of a value: strings as they are, parts lists joined, anything else as JSON text
    con.execute(f"""CREATE OR REPLACE TEMP MACRO _text(v) AS CASE
        WHEN json_type(v) = 'VARCHAR' THEN v ->> '$' WHEN json_type(v) = 'NULL' THEN NULL
        WHEN _is_parts(v) THEN array_to_string(list_transform(list_filter(
            from_json(v, '["JSON"]'), lambda p: _is_text_part(p)), lambda p: p ->> 'text'),
            '{PART_SEPARATOR}')
        ELSE v ->> '$' END""")
    # non-text parts of a parts list (NULL when none)
    con.execute("""CREATE OR REPLACE TEMP MACRO _parts(v) AS CASE WHEN _is_parts(v)
        THEN nullif(list_filter(from_json(v, '["JSON"]'), lambda p: NOT _is_text_part(p)), []) END""")
    # true when a text field held a number, boolean, object or list (stored as its JSON text)
    con.execute("CREATE OR REPLACE TEMP MACRO _coerced(v) AS coalesce(json_type(v) NOT IN "
                "('VARCHAR', 'NULL'), false) AND NOT _is_parts(v)")


def normalize_sql(fmt: str, mapping: dict[str, str], stage: str = "_stage") -> tuple[str, list]:
    """SELECT producing canonical columns + `err` (first invalid field) + change flags for each
    staged record (call `define_macros` on the connection first)."""
    params: list = []

    def lit(value: str) -> str:
        params.append(value)
        return f"CAST(${len(params)} AS VARCHAR)"

    def raw(field: str) -> str:  # a mapped field's JSON value (conversations, tags)
        return f"f_{field}" if field in mapping else "CAST(NULL AS JSON)"

    fields = sorted(mapping)
    params.append([json_path(mapping[f]) for f in fields])
    paths = f"${len(params)}"
    keep = "".join(f", f_{f}" for f in ("id", "category", "tags", "split", "system")
                   if f in mapping)
    if fmt in ("chat", "sharegpt"):
        # one JSON parse per record for all mapped fields (json_extract with a list of paths)
        extracted = ", ".join(f"e[{i + 1}] AS f_{f}" for i, f in enumerate(fields))
        source = (f"(SELECT line, j, {extracted} FROM "
                  f"(SELECT line, j, json_extract(j, {paths}) AS e FROM {stage}))")
        body, messages_expr, n_turns, coerced, flags = _conversation_sql(fmt, mapping, raw, lit,
                                                                         source, keep)

        def txt(field: str) -> str:
            return f"({raw(field)} ->> '$')" if field in mapping else "CAST(NULL AS VARCHAR)"
    else:
        # flat: every mapped field as text and its JSON type, in two passes over the record
        # (a string as it is, anything else as its JSON text, counted as coerced)
        def txt(field: str) -> str:
            return f"x_{field}" if field in mapping else "CAST(NULL AS VARCHAR)"

        # the JSON type (a second parse, as slow as the first) only where the text could
        # be a non-string value's JSON text: a number, true/false, an object or a list
        extracted = ", ".join(
            f"s[{i + 1}] AS x_{f}, CASE WHEN s[{i + 1}][1] IN ('-', '[', '{{', '0', '1', '2', "
            f"'3', '4', '5', '6', '7', '8', '9') OR s[{i + 1}] IN ('true', 'false') THEN "
            f"json_type(j, {paths}[{i + 1}]) ELSE 'VARCHAR' END AS t_{f}"
            for i, f in enumerate(fields))
        tags_json = ""
        if "tags" in mapping:
            params.append(json_path(mapping["tags"]))
            tags_json = f", json_extract(j, ${len(params)}) AS f_tags"
        source = (f"(SELECT line, {extracted}{tags_json} FROM (SELECT line, j, "
                  f"json_extract_string(j, {paths}) AS s FROM {stage}))")
        coerced_fields = [f for f in ("instruction", "input", "response", "system") if f in mapping]
        coerced = "CASE " + " ".join(
            f"WHEN t_{f} NOT IN ('VARCHAR', 'NULL') THEN {lit(mapping[f])}"
            for f in coerced_fields
        ) + " END" if coerced_fields else "CAST(NULL AS VARCHAR)"
        body = f"""
            SELECT *,
              nullif({txt('system')}, '') AS system,
              CASE WHEN coalesce(inp, '') <> '' THEN instr || chr(10) || chr(10) || inp
                   ELSE instr END AS instruction,
              resp AS response,
              CASE WHEN instr IS NULL THEN {lit(mapping['instruction'] + ': missing required field')}
                   WHEN resp IS NULL THEN {lit(mapping['response'] + ': missing required field')}
              END AS err, {coerced} AS coerced
            FROM (SELECT *, {txt('instruction')} AS instr, {txt('input')} AS inp,
                         {txt('response')} AS resp FROM {source})"""
        # built as text: cheaper than to_json of a list of structs, same JSON (and the
        # text the `rows` view derives for rows stored without it)
        messages_expr = plain_messages_sql("system", "instruction", "response")
        n_turns, coerced = "2", "coerced"
        flags = ("false AS starts_assistant, false AS has_parts, false AS has_tool_calls, "
                 "CAST(NULL AS JSON) AS tools")
    id_expr, cat_expr = txt("id"), txt("category")
    tags_expr = "CAST(NULL AS VARCHAR[])"
    if "tags" in mapping:
        t = raw("tags")
        tags_expr = (f"CASE WHEN json_type({t}) = 'ARRAY' THEN from_json({t}, '[\"VARCHAR\"]') "
                     f"WHEN json_type({t}) = 'VARCHAR' THEN string_split({t} ->> '$', ',') END")
    split_expr = txt("split")
    sql = f"""
        SELECT line, {messages_expr} AS messages, system, instruction, response,
               {n_turns} AS n_turns, {id_expr} AS src_id, {cat_expr} AS category,
               {tags_expr} AS tags, {split_expr} AS src_split, err, {coerced} AS coerced, {flags}
        FROM ({body})"""
    return sql, params


def _conversation_sql(fmt: str, mapping: dict[str, str], raw, lit, source: str, keep: str):
    """(body SELECT, messages expr, n_turns expr, coerced expr, flag columns) for chat/ShareGPT.

    Each message is built as JSON with `json_merge_patch`, which drops the optional keys that
    are NULL, so a plain message stays exactly {"role": ..., "content": ...}."""
    conv_field = "messages" if fmt == "chat" else "conversations"
    name = mapping[conv_field]
    conv = raw(conv_field)
    if fmt == "chat":
        cases = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in CHAT_ROLES.items())
        role = f"CASE lower(m ->> 'role') {cases} ELSE NULL END"
        content = "json_extract(m, 'content')"
        calls = ("coalesce(CASE WHEN json_type(json_extract(m, 'tool_calls')) = 'ARRAY' THEN json_extract(m, 'tool_calls') END, "
                 "CASE WHEN json_type(json_extract(m, 'function_call')) = 'OBJECT' THEN "
                 "json_array(json_object('type', 'function', 'function', json_extract(m, 'function_call'))) END)")
        extra = "'tool_call_id', m ->> 'tool_call_id', 'name', m ->> 'name'"
    else:
        cases = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in SHAREGPT_ROLES.items())
        role = f"CASE lower(m ->> 'from') {cases} ELSE NULL END"
        content = "CASE WHEN lower(m ->> 'from') = 'function_call' THEN NULL ELSE json_extract(m, 'value') END"
        # the call is JSON text: one {"name", "arguments"} object or a list of them
        call = "_as_json(json_extract(m, 'value'))"
        calls = (f"CASE WHEN lower(m ->> 'from') = 'function_call' THEN CASE json_type({call}) "
                 f"WHEN 'OBJECT' THEN json_array(json_object('type', 'function', 'function', {call})) "
                 f"WHEN 'ARRAY' THEN to_json(list_transform(from_json({call}, '[\"JSON\"]'), "
                 "lambda c: json_object('type', 'function', 'function', c))) END END")
        extra = "'tool_call_id', NULL, 'name', NULL"
    system_top = raw("system")
    # msgs: list of structs with the parts normalized, built once per record
    inner = f"""
        SELECT line, j{keep}, _as_json({raw('tools')}) AS tools_raw, nullif(_text({system_top}), '') AS sys_top,
          list_transform(from_json(_as_json({conv}), '["JSON"]'), lambda m: {{
            'role': {role}, 'content': _text({content}), 'parts': _parts({content}),
            'calls': {calls}, 'coerced': _coerced({content}), 'm': m}}) AS ms
        FROM {source}"""
    msgs = """list_transform(ms, lambda x: json_merge_patch(
            json_object('role', x.role, 'content', coalesce(x.content, CASE WHEN x.calls IS NOT NULL
                        THEN '' END)),
            json_object('tool_calls', x.calls, {extra}, 'parts', to_json(x.parts))))""".replace(
        "{extra}", extra.replace("m ->>", "x.m ->>"))
    body = f"""
        SELECT line, j{keep}, msgs, tools_raw AS tools,
          list_filter(ms, lambda m: m.role = 'system')[1].content AS system,
          list_filter(ms, lambda m: m.role = 'user')[1].content AS instruction,
          list_filter(ms, lambda m: m.role = 'assistant')[-1].content AS response,
          CASE
            WHEN ms IS NULL OR len(ms) = 0 THEN {lit(name + ': missing or empty')}
            WHEN len(list_filter(ms, lambda m: m.role IS NULL)) > 0
              THEN {lit(name + ': role must be system, user, assistant or tool')}
            WHEN len(list_filter(ms, lambda m: m.content IS NULL AND m.calls IS NULL)) > 0
              THEN {lit(name + ': a message has no content')}
            WHEN len(list_filter(ms, lambda m: m.role = 'user')) = 0
              THEN {lit(name + ': no user turn')}
            WHEN len(list_filter(ms, lambda m: m.role = 'assistant')) = 0
              THEN {lit(name + ': no assistant turn')}
            WHEN tools_raw IS NOT NULL AND json_type(tools_raw) <> 'ARRAY'
              THEN {lit(mapping.get('tools', 'tools') + ': expected a list of tool schemas')}
          END AS err,
          CASE WHEN len(list_filter(ms, lambda m: m.coerced)) > 0 THEN {lit(name + ': content')}
               WHEN _coerced({system_top}) THEN {lit(mapping.get('system', 'system'))} END AS coerced,
          list_filter(ms, lambda m: m.role <> 'system')[1].role = 'assistant' AS starts_assistant,
          len(list_filter(ms, lambda m: m.parts IS NOT NULL)) > 0 AS has_parts,
          len(list_filter(ms, lambda m: m.calls IS NOT NULL)) > 0 AS has_tool_calls,
          sys_top, ms
        FROM (SELECT *, {msgs} AS msgs FROM ({inner}))"""
    # a top-level system prompt (LLaMA-Factory's `system` column) opens the conversation
    body = f"""
        SELECT line, j{keep}, tools, err, coerced, starts_assistant, has_parts, has_tool_calls,
          instruction, response,
          CASE WHEN sys_top IS NOT NULL AND system IS NULL THEN sys_top ELSE system END AS system,
          CASE WHEN sys_top IS NOT NULL AND system IS NULL
               THEN list_prepend(json_object('role', 'system', 'content', sys_top), msgs)
               ELSE msgs END AS msgs,
          len(list_filter(ms, lambda m: m.role <> 'system')) AS n_turns
        FROM ({body})"""
    flags = "starts_assistant, has_parts, has_tool_calls, tools"
    return body, "to_json(msgs)", "n_turns", "coerced", flags
