"""Preference data: read files in any supported form, validate them, tokenise and batch them.

formats.py  explicit / conversational / implicit-prompt records -> PreferenceExample
io.py       readers (JSONL, JSON, Parquet, `datasets` folders, bundled:NAME), load, write, convert, split
validate.py `rlhfkit data check`: errors with file:line, warnings with counts, statistics
tokenize.py chat template, truncation, prompt/completion boundaries
"""
