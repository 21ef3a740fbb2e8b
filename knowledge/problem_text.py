"""Problems of an uploaded file in Chinese, the knowledge admin's default language.

The loader writes each `Problem` in English (the command line prints them, tests match them);
this module renders the same problem in Chinese for the admin page, pattern by pattern, keeping
the values it quotes (ids, column names, times). A message no pattern knows stays in English, so
a new loader message is never lost, only untranslated (`tests/knowledge/test_problem_text.py`
checks every message the loader writes today has a pattern, the notes of what it fixed included).
"""

from __future__ import annotations

import re

_FIELDS = r"id, question, variants, answer, category, campaign, valid_from, valid_until"
_ISO = "2025-11-11T00:00:00+08:00"

_MESSAGES: list[tuple[re.Pattern[str], str]] = [(re.compile(p, re.S), zh) for p, zh in [
    (r"^cannot read: (?P<a>.*)$", "无法读取：{a}"),
    (r"^unsupported file type; use \.yaml, \.yml, \.csv or \.xlsx$",
     "不支持的文件类型，请使用 .yaml、.yml、.csv 或 .xlsx"),
    (r"^(?P<a>.*) is not an ISO 8601 time such as .*$",
     "{a} 不是 ISO 8601 时间，应写成 " + _ISO),
    (r"^(?P<a>.*) has no UTC offset; write it like .*$",
     "{a} 没有时区（UTC 偏移），请写成 " + _ISO),
    (r"^not UTF-8 text; save it as \"CSV UTF-8\"$", "不是 UTF-8 文本，请另存为“CSV UTF-8”"),
    (r"^not UTF-8 text$", "不是 UTF-8 文本"),
    (r"^invalid YAML: (?P<a>.*)$", "YAML 格式错误：{a}"),
    (r"^the top level must be a mapping with an `entries:` list$",
     "文件顶层必须是一个包含 `entries:` 列表的映射"),
    (r"^unknown top-level key; expected entries and tests$",
     "未知的顶层键，只能是 entries 和 tests"),
    (r"^must be a list$", "必须是列表"),
    (r"^must be a mapping$", "必须是键值映射"),
    (r"^invalid CSV: (?P<a>.*)$", "CSV 格式错误：{a}"),
    (r"^not a readable XLSX file: (?P<a>.*)$", "无法读取的 XLSX 文件：{a}"),
    (r"^missing header row; expected .*$", "缺少表头行，应为：" + _FIELDS),
    (r"^unknown column; expected .*$", "未知的列，应为：" + _FIELDS),
    (r"^column appears twice$", "该列出现了两次"),
    (r"^missing required column$", "缺少必填列"),
    (r"^value in a column without a header$", "没有表头的列里有内容"),
    (r"^no entries$", "没有任何条目"),
    (r"^unknown field; expected (?P<a>.*)$", "未知字段，应为：{a}"),
    (r"^missing required field$", "缺少必填字段"),
    (r"^(?P<a>.*) is not a valid id: .*$",
     "{a} 不是有效的 ID：只能用字母、数字和 . _ -，以字母或数字开头，最多 128 个字符"),
    (r"^(?P<a>\S+) is before valid_from (?P<b>\S+)$", "{a} 早于开始时间 valid_from {b}"),
    (r"^must be text$", "必须是文本"),
    (r"^must not be empty$", "不能为空"),
    (r"^unknown category (?P<a>.*); use one of (?P<b>.*)$", "未知分类 {a}，可选：{b}"),
    (r"^must be text separated by '\|' or a list$", "必须是用“|”分隔的文本或列表"),
    (r"^variant (?P<a>.*) must be text$", "问法 {a} 必须是文本"),
    (r"^variant (?P<a>.*) repeats the question; dropped$", "问法 {a} 与标准问题重复，已去掉"),
    (r"^variant (?P<a>.*) repeats variant (?P<b>.*); dropped$", "问法 {a} 与问法 {b} 重复，已去掉"),
    (r"^must be an ISO 8601 time such as .*$", "必须是 ISO 8601 时间，如 " + _ISO),
    (r"^duplicate id (?P<a>.*) \(first used at (?P<b>.*)\)$", "ID {a} 重复（首次出现在 {b}）"),
    (r"^(?P<a>.*) is also a question of entry (?P<b>\S+); both are always active, .*$",
     "{a} 也是条目 {b} 的问题；两个条目都长期有效，其中一个永远不会被选中"),
    (r"^missing; give an entry id, or null when the bot must hand off$",
     "缺少期望答案：填写条目 ID；机器人应转人工时填 null"),
    (r"^no entry has id (?P<a>.*)$", "没有 ID 为 {a} 的条目"),
    (r"^entry (?P<a>\S+) is not active at (?P<b>\S+)$", "条目 {a} 在 {b} 不生效"),
    (r"^larger than (?P<a>\d+) KiB$", "文件超过 {a} KiB"),
]]

_LOCATIONS: list[tuple[re.Pattern[str], str]] = [(re.compile(p), zh) for p, zh in [
    (r"^file$", "文件"),
    (r"^row (?P<a>\d+)$", "第 {a} 行"),
    (r"^line (?P<a>\d+)$", "第 {a} 行"),
    (r"^entries\[(?P<n>\d+)\](?P<rest>.*)$", "第 {n1} 个条目{rest}"),
    (r"^tests\[(?P<n>\d+)\]$", "第 {n1} 个测试问题"),
    (r"^column (?P<a>\d+)$", "第 {a} 列"),
]]


def _render(patterns: list[tuple[re.Pattern[str], str]], text: str) -> str:
    for pattern, template in patterns:
        match = pattern.match(text)
        if match is not None:
            values = match.groupdict()
            if "n" in values:
                values["n1"] = str(int(values["n"]) + 1)  # people count from one
            return template.format(**values)
    return text


def message_in_chinese(message: str) -> str:
    """A loader message in Chinese (unchanged when no pattern knows it)."""
    return _render(_MESSAGES, message)


def location_in_chinese(location: str) -> str:
    """``row 3`` → ``第 3 行``, ``entries[0] (id=x)`` → ``第 1 个条目 (id=x)``."""
    return _render(_LOCATIONS, location)
