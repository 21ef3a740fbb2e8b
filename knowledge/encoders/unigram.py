"""The prepared e5 tokenizer in plain Python: the same ids in ~80 MB instead of ~270 MB.

``tokenizers`` holds the 250 002-piece unigram vocabulary of ``tokenizer.json`` (written by
:mod:`knowledge.encoders.spm_tokenizer`) as a per-character trie of hash maps: about 270 MB of the
gateway's memory, for what one shopper's question needs a few dozen dictionary lookups of. This
module reads the same file and segments exactly as that pipeline does, step by step:

1. special tokens (``<s>``, ``</s>``, ``<mask>``…) are cut out of the raw text first
   (``<mask>`` also takes the spaces before it), and each stretch between them is tokenised
   alone;
2. normalisation code point by code point through the SentencePiece precompiled charsmap (the
   darts-clone trie ``spm_tokenizer`` builds; the file's first step puts a control character
   between code points, which the map deletes again), then runs of spaces become one;
3. metaspace: spaces become ``▁`` and a ``▁`` is put in front unless one is there;
4. characters that no piece contains stand alone, each an ``<unk>``;
5. unigram Viterbi over each stretch, as ``tokenizers``' ``encode_optimized``: pieces tried
   from each position shortest first, a later candidate replacing the best only when strictly
   better, ``<unk>`` (lowest score − 10) for a character no single piece covers, runs of
   ``<unk>`` fused into one;
6. ``<s> … </s>``, truncated to the model's length, padded with ``<pad>`` on the right.

:meth:`UnigramTokenizer.from_file` refuses a file shaped otherwise (another model's tokenizer),
and the encoder keeps the ``tokenizers`` one then. ``tests/knowledge/encoders/test_unigram.py``
checks the ids against ``tokenizers`` on every question kefu ships and the edge cases.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from array import array
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from knowledge.errors import ModelNotPreparedError

PREFIX_CAP = 4  # prefixes kept to stop early: 311 k keys in all, about as fast as tokenizers
UNK_PENALTY = 10.0  # tokenizers' K_UNK_PENALTY: an unknown character scores this below the worst
_CLUSTER_BREAK = "(?<=[\\s\\S])(?=[\\s\\S])"  # the first normaliser step spm_tokenizer writes
_SPACE_RUNS = re.compile(" {2,}")
_METASPACE = "▁"


class _Charsmap:
    """Code point → replacement through a SentencePiece precompiled charsmap (darts-clone)."""

    def __init__(self, blob: bytes) -> None:
        (trie_size,) = struct.unpack("<I", blob[:4])
        self._units = array("I", blob[4:4 + trie_size])
        self._strings = blob[4 + trie_size:]
        self.lookup = lru_cache(maxsize=1 << 16)(self._lookup)

    def _lookup(self, char: str) -> str | None:
        units = self._units
        unit = units[0]
        pos = (unit >> 10) << ((unit & 0x200) >> 6)
        found: int | None = None
        for byte in char.encode("utf-8"):
            pos ^= byte
            unit = units[pos]
            if (unit & 0x800000FF) != byte:  # no key continues with this byte
                return None
            pos ^= (unit >> 10) << ((unit & 0x200) >> 6)
            found = units[pos] & 0x7FFFFFFF if unit & 0x100 else None
        if found is None:
            return None
        end = self._strings.index(b"\0", found)
        return self._strings[found:end].decode("utf-8")

    def normalize(self, text: str) -> str:
        lookup = self.lookup
        out = []
        for char in text:
            replacement = lookup(char)
            out.append(char if replacement is None else replacement)
        return "".join(out)


class UnigramTokenizer:
    """Ids for the prepared e5 model's ``tokenizer.json``, without ``tokenizers``."""

    def __init__(self, pieces: Sequence[str], scores: Sequence[float], charsmap: bytes, *,
                 unk_id: int, bos_id: int, eos_id: int, pad_id: int,
                 specials: Sequence[tuple[str, int, bool]], stand_in: str = "") -> None:
        self._stand_in = stand_in
        # pieces by id, and their other prefixes up to PREFIX_CAP characters as -1: the walk
        # from a position stops at the first short string no piece starts with (all prefixes
        # would double the dict for little more speed)
        self._ids = {piece[:k]: -1 for piece in pieces
                     for k in range(1, min(len(piece), PREFIX_CAP + 1))}
        self._ids.update((piece, i) for i, piece in enumerate(pieces))
        self._scores = array("d", scores)
        self._max_len = max(len(p) for p in pieces)
        self._known = frozenset(c for piece in pieces for c in piece)
        self._unk_score = min(scores) - UNK_PENALTY
        self._charsmap = _Charsmap(charsmap)
        self.unk_id, self.bos_id, self.eos_id, self.pad_id = unk_id, bos_id, eos_id, pad_id
        self._special_ids = {content: i for content, i, _ in specials}
        ordered = sorted(specials, key=lambda s: -len(s[0]))
        self._specials = re.compile("|".join(
            (r"\s*" if lstrip else "") + f"({re.escape(content)})"
            for content, _, lstrip in ordered)) if specials else None

    @classmethod
    def from_file(cls, path: Path) -> UnigramTokenizer:
        """Read a ``tokenizer.json`` that :func:`spm_tokenizer.build_tokenizer` wrote.

        Raises:
            ModelNotPreparedError: the file is shaped otherwise (another model's tokenizer).
        """
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
            return cls._from_spec(spec)
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise ModelNotPreparedError(f"{path} is not a kefu-prepared unigram tokenizer: "
                                        f"{exc}") from exc

    @classmethod
    def _from_spec(cls, spec: dict[str, Any]) -> UnigramTokenizer:
        model = spec["model"]
        steps = spec["normalizer"]["normalizers"]
        pre = spec["pre_tokenizer"]["pretokenizers"]
        shape = ([s["type"] for s in steps], steps[0]["pattern"].get("Regex"),
                 steps[2]["pattern"].get("Regex"), steps[2]["content"],
                 model["type"], model.get("byte_fallback"), pre[0]["type"],
                 pre[0]["prepend_scheme"], pre[0]["split"], pre[1]["behavior"])
        expected = (["Replace", "Precompiled", "Replace"], _CLUSTER_BREAK, " {2,}", " ",
                    "Unigram", False, "Metaspace", "always", False, "Isolated")
        if shape != expected or spec.get("truncation") or spec.get("padding"):
            raise ValueError(f"unexpected pipeline {shape}")
        pieces = [piece for piece, _ in model["vocab"]]
        scores = [float(score) for _, score in model["vocab"]]
        if len(set(pieces)) != len(pieces):
            raise ValueError("duplicate pieces")
        single = spec["post_processor"]["single"]
        bos, eos = single[0]["SpecialToken"]["id"], single[2]["SpecialToken"]["id"]
        specials = [(t["content"], int(t["id"]), bool(t["lstrip"]))
                    for t in spec["added_tokens"] if t["special"]]
        if any(t["rstrip"] or t["single_word"] or t["normalized"] for t in spec["added_tokens"]):
            raise ValueError("added tokens with options this reader does not follow")
        ids = {content: i for content, i, _ in specials}
        unk_id, pad_id = int(model["unk_id"]), ids["<pad>"]
        last = max(ids[bos], ids[eos], pad_id, unk_id)
        stand_in = {**spec, "normalizer": None, "pre_tokenizer": pre[0],
                    "model": {**model, "vocab": model["vocab"][:last + 1]},
                    "added_tokens": [t for t in spec["added_tokens"] if t["id"] <= last]}
        return cls(pieces, scores, base64.b64decode(steps[1]["precompiled_charsmap"]),
                   unk_id=unk_id, bos_id=ids[bos], eos_id=ids[eos], pad_id=pad_id,
                   specials=specials, stand_in=json.dumps(stand_in))

    def stand_in(self) -> str:
        """A ``tokenizer.json`` of just the special tokens, for a library that must load one.

        sentence-transformers builds the model's tokenizer when it loads the model; given this
        one instead (``tokenizer_file``) it builds a few tokens, not 250 002.
        """
        return self._stand_in

    # --- one text -----------------------------------------------------------------------------

    def ids(self, text: str) -> list[int]:
        """The text's piece ids, without ``<s>``/``</s>``."""
        if self._specials is None:
            return self._stretch(text)
        out: list[int] = []
        start = 0
        for found in self._specials.finditer(text):
            out += self._stretch(text[start:found.start()])
            out.append(self._special_ids[found.group(found.lastindex or 0)])
            start = found.end()
        return out + self._stretch(text[start:])

    def _stretch(self, text: str) -> list[int]:
        if not text:
            return []
        normalized = _SPACE_RUNS.sub(" ", self._charsmap.normalize(text))
        if not normalized:
            return []
        spaced = normalized.replace(" ", _METASPACE)
        if not spaced.startswith(_METASPACE):
            spaced = _METASPACE + spaced
        out: list[int] = []
        known, begin = self._known, 0
        for i, char in enumerate(spaced):
            if char not in known:  # no piece has it: alone, as one <unk>
                out += self._viterbi(spaced[begin:i])
                out.append(self.unk_id)
                begin = i + 1
        return out + self._viterbi(spaced[begin:])

    def _viterbi(self, text: str) -> list[int]:
        size = len(text)
        if not size:
            return []
        best = [0.0] * (size + 1)
        starts: list[int | None] = [0] + [None] * size
        chosen = [0] * (size + 1)
        get, scores, unk, unk_score = self._ids.get, self._scores, self.unk_id, self._unk_score
        for i in range(size):
            base = best[i]
            single = False
            for j in range(i + 1, min(size, i + self._max_len) + 1):
                piece = get(text[i:j])
                if piece is None:
                    if j - i <= PREFIX_CAP:  # no piece starts with text[i:j]: none longer either
                        break
                    continue
                if piece < 0:
                    continue
                score = base + scores[piece]
                if starts[j] is None or score > best[j]:
                    best[j], starts[j], chosen[j] = score, i, piece
                single = single or j == i + 1
            if not single:
                score = base + unk_score
                if starts[i + 1] is None or score > best[i + 1]:
                    best[i + 1], starts[i + 1], chosen[i + 1] = score, i, unk
        out: list[int] = []
        end = size
        while end > 0:
            piece, begin = chosen[end], starts[end]
            assert begin is not None  # every position is reached: a character is a node at worst
            if not (piece == unk and out and out[-1] == unk):  # runs of <unk> are one
                out.append(piece)
            end = begin
        out.reverse()
        return out

    # --- a batch ------------------------------------------------------------------------------

    def batch(self, texts: Sequence[str], max_length: int) -> tuple[list[list[int]],
                                                                     list[list[int]]]:
        """``<s> ids </s>`` per text, cut to ``max_length``, right-padded: (ids, attention mask)."""
        rows = [[self.bos_id, *self.ids(t)[:max_length - 2], self.eos_id] for t in texts]
        width = max((len(r) for r in rows), default=0)
        ids = [r + [self.pad_id] * (width - len(r)) for r in rows]
        mask = [[1] * len(r) + [0] * (width - len(r)) for r in rows]
        return ids, mask
