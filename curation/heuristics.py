"""Heuristic quality signals, computed in SQL over a whole version (1M rows in seconds).

Signals (score names): inst_chars, resp_chars, inst_tokens, resp_tokens (word/punctuation
pieces, a tokenizer-free approximation), resp_inst_ratio, rep_ngram_ratio (share of repeated
word 3-grams in the response), non_alnum_ratio, empty_response, truncated, refusal (0/1), and
lang (label: en/de/fr/es/it/pt/nl by stopwords, ja/ko/zh/ru/ar by script (ja: kana
beside the Han characters), else 'unknown';
value: the share of words that are stopwords of that language).
"""

from __future__ import annotations

STOPWORDS = {
    "en": ["the", "and", "is", "of", "to", "in", "that", "it", "you", "for", "are", "with",
           "this", "be", "what", "how"],
    "de": ["der", "die", "und", "ist", "das", "nicht", "ein", "eine", "zu", "ich", "mit", "sie",
           "den", "auf", "wie", "was"],
    "fr": ["le", "les", "et", "est", "un", "une", "que", "pas", "des", "du", "pour", "dans",
           "qui", "avec", "sur", "vous"],
    "es": ["el", "los", "las", "y", "es", "que", "en", "por", "una", "con", "para", "del",
           "como", "pero", "qué", "está"],
    "it": ["il", "di", "che", "è", "non", "per", "una", "sono", "gli", "della", "con", "del",
           "questo", "come", "anche", "più"],
    "pt": ["o", "os", "não", "uma", "com", "para", "do", "da", "em", "que", "é", "você",
           "mais", "como", "isso", "dos"],
    "nl": ["de", "het", "een", "en", "van", "is", "niet", "dat", "op", "te", "zijn", "met",
           "voor", "ik", "je", "wat"],
}
# Checked in this order. Japanese writes kanji (Han) beside kana, so it is told from Chinese
# by its kana: at least KANA_SHARE of its Han + kana characters (a Chinese text quoting one
# Japanese word stays Chinese).
SCRIPTS = {"ja": r"[\p{Hiragana}\p{Katakana}]", "ko": r"\p{Hangul}", "zh": r"\p{Han}",
           "ru": r"\p{Cyrillic}", "ar": r"\p{Arabic}"}
KANA_SHARE = 0.1
REFUSAL = (r"(as an ai\b|as a language model|i'?m sorry,? but|i am sorry,? but|"
           r"i (cannot|can't|can not|won't|am unable to|'m unable to) "
           r"(help|assist|provide|comply|do that|fulfill)|i'm not able to (help|assist|provide))")
ENDINGS = r"[.!?。！？…\"'`)\]}>*|]$"  # a response ending otherwise looks cut off
_WORD = r"[\p{L}\p{N}_]+"  # words in any script (RE2's \w is ASCII-only)
_PIECE = _WORD + r"|[^\p{L}\p{N}_\s]"  # a word or one symbol: a tokenizer-free token count
NUMERIC = ("inst_chars", "resp_chars", "inst_tokens", "resp_tokens", "resp_inst_ratio",
           "rep_ngram_ratio", "non_alnum_ratio", "empty_response", "truncated", "refusal")


def signals_sql() -> tuple[str, list]:
    """SELECT over `_base(uid, rid, i, o)` giving one column per numeric signal + lang, lang_conf."""
    params: list = []
    lang_counts = []
    for code, words in STOPWORDS.items():
        params.append(words)
        lang_counts.append(f"len(list_filter(ow, lambda w: list_contains(?, w))) AS sw_{code}")
    codes = list(STOPWORDS)
    greatest = "greatest(" + ", ".join(f"sw_{c}" for c in codes) + ")"
    pick = " ".join(f"WHEN sw_{c} = {greatest} THEN '{c}'" for c in codes)
    kana = (f"len(regexp_extract_all(o_all, '{SCRIPTS['ja']}')) >= {KANA_SHARE} * "
            f"len(regexp_extract_all(o_all, '[\\p{{Han}}\\p{{Hiragana}}\\p{{Katakana}}]'))")
    script = " ".join(f"WHEN regexp_matches(o_all, '{pat}'){' AND ' + kana if code == 'ja' else ''} "
                      f"THEN '{code}'" for code, pat in SCRIPTS.items())
    sql = f"""
    SELECT uid, rid,
      CAST(length(i) AS DOUBLE) AS inst_chars,
      CAST(length(o) AS DOUBLE) AS resp_chars,
      CAST(len(regexp_extract_all(i, '{_PIECE}')) AS DOUBLE) AS inst_tokens,
      CAST(len(rp) AS DOUBLE) AS resp_tokens,
      length(o) / greatest(length(i), 1) AS resp_inst_ratio,
      CASE WHEN len(ow) < 4 THEN 0.0 ELSE 1.0 - len(list_distinct(list_transform(
          range(1, len(ow) - 1), lambda k: ow[k] || ' ' || ow[k + 1] || ' ' || ow[k + 2])))
          / (len(ow) - 2) END AS rep_ngram_ratio,
      -- pieces that are not words are single symbol characters
      (len(rp) - len(ow)) / greatest(length(o), 1) AS non_alnum_ratio,
      CAST(trim(o) = '' AS DOUBLE) AS empty_response,
      CAST(length(trim(o)) >= 40 AND NOT regexp_matches(trim(o), ?) AS DOUBLE) AS truncated,
      CAST(regexp_matches(lower(o), ?) AS DOUBLE) AS refusal,
      CASE {script} WHEN {greatest} > 0 THEN CASE {pick} END ELSE 'unknown' END AS lang,
      CASE WHEN len(ow) = 0 THEN 0.0 ELSE {greatest} / len(ow) END AS lang_conf
    FROM (SELECT *, i || ' ' || o AS o_all, {", ".join(lang_counts)}
          FROM (SELECT *, regexp_extract_all(o, '{_PIECE}') AS rp,
                       regexp_extract_all(lower(o), '{_WORD}') AS ow FROM _base))"""
    # patterns come before the stopword lists in the SQL text
    return sql, [ENDINGS, REFUSAL, *params]
