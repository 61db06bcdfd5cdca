"""Fingerprints of one answer cell, and how much of two cells' code they share.

A cell's Python source is turned into a sequence of tokens with :mod:`tokenize`, normalized so
that what does not change the program does not count:

* comments, blank lines, indentation and docstrings (a string that is a statement of its own)
  are dropped; every other string literal is ``S``;
* every name the cell binds (assignment targets, parameters, loop and comprehension variables,
  ``def``/``class`` names, ``import ... as`` aliases, ``except ... as``; found with :mod:`ast`)
  becomes ``V``, so renaming a variable changes nothing. Names the cell only reads (``np``,
  ``len``, a function of ``course``, a keyword argument such as ``axis=``) and attributes
  (``.mean``, ``.var``) are kept: ``np.mean`` and ``np.var`` stay different.

Each token becomes one character, and copydetect's winnowing (Schleimer, Wilkerson and Aiken,
"Winnowing: local algorithms for document fingerprinting", SIGMOD 2003;
``copydetect.utils.get_document_fingerprints``) selects the fingerprints of its k-grams of
:data:`K` tokens, with a window of :data:`WINDOW`: every run of at least ``K + WINDOW - 1``
tokens that two cells share is found, whatever the order of the statements around it. The
k-grams of the release's own template for the cell (the function's ``def`` line, the stub) are
boilerplate and never count.
"""

from __future__ import annotations

import ast
import io
import keyword
import tokenize
from dataclasses import dataclass, field

import numpy as np
from copydetect.utils import (
    find_fingerprint_overlap,
    get_copied_slices,
    get_document_fingerprints,
    get_token_coverage,
    hashed_kgrams,
)

#: Tokens per k-gram: shorter runs (``V = V + 1``) are common to any two solutions.
K = 5
#: Winnowing window: every shared run of ``K + WINDOW - 1`` = 8 tokens or more is detected.
WINDOW = 4
_SKIPPED = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENCODING, tokenize.ENDMARKER}
_STATEMENT_START = {None, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.NL}
_FSTRING_START = getattr(tokenize, "FSTRING_START", None)  # Python 3.12 and later
_FSTRING_END = getattr(tokenize, "FSTRING_END", None)
#: One character per distinct normalized token, shared by every cell of a run.
_ALPHABET: dict[str, str] = {}


@dataclass
class CellPrint:
    """The normalized tokens of one answer cell and their fingerprints.

    ``spans[i]`` is the ``(start, end)`` character range of normalized token ``i`` in
    ``source``; ``coverage`` is the number of tokens that some fingerprint covers (0 for a cell
    that is only the release's template).
    """

    source: str
    tokens: list[str]
    spans: list[tuple[int, int]]
    hashes: set = field(default_factory=set)
    index: dict = field(default_factory=dict)
    coverage: int = 0
    covers: dict = field(default_factory=dict)  # hash -> the token positions its k-grams cover


def bound_names(source: str) -> set[str] | None:
    """The names ``source`` binds, or None when it is not valid Python."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.alias) and node.asname:
            names.add(node.asname)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names


def _raw_tokens(source: str) -> list[tokenize.TokenInfo]:
    """Python's tokens of ``source``; for code that does not tokenize, the ones before the error."""
    tokens = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            tokens.append(tok)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return tokens


def normalize(source: str) -> tuple[list[str], list[tuple[int, int]]]:
    """The normalized tokens of ``source`` (see the module docstring) and their character spans.

    Parameters
    ----------
    source : str
        One cell's Python code. Code that does not parse is normalized as far as it tokenizes,
        with every name that is not a keyword or an attribute as ``V``.

    Returns
    -------
    tokens : list of str
    spans : list of (int, int)
        ``source[start:end]`` is the original text of each token.
    """
    if not isinstance(source, str):
        raise TypeError(f"source must be a str, got {type(source).__name__}")
    bound = bound_names(source)
    line_start = [0]
    for line in source.splitlines(keepends=True):
        line_start.append(line_start[-1] + len(line))

    def offset(row_col: tuple[int, int]) -> int:
        row, col = row_col
        return line_start[min(row - 1, len(line_start) - 1)] + col

    # One pass over Python's tokens, longer than most functions here: the f-string depth and
    # the previous token (for docstrings and attributes) are state that the pass carries.
    raw = _raw_tokens(source)
    tokens: list[str] = []
    spans: list[tuple[int, int]] = []
    previous = None  # the previous token's type (for docstrings) and text (for attributes)
    in_fstring = 0
    for i, tok in enumerate(raw):
        kind, text = tok.type, tok.string
        if kind == _FSTRING_START:
            in_fstring += 1
            start = offset(tok.start)
            continue
        if in_fstring:
            if kind == _FSTRING_END:
                in_fstring -= 1
                if not in_fstring:
                    tokens.append("S")
                    spans.append((start, offset(tok.end)))
            continue
        if kind in _SKIPPED:
            previous = (kind, text) if kind != tokenize.COMMENT else previous
            continue
        if kind == tokenize.STRING:
            following = raw[i + 1].type if i + 1 < len(raw) else None
            if (previous is None or previous[0] in _STATEMENT_START) and following in (
                    tokenize.NEWLINE, tokenize.ENDMARKER, tokenize.COMMENT, None):
                previous = (kind, text)
                continue  # a docstring or a bare string statement
            norm = "S"
        elif kind == tokenize.NAME:
            after_dot = previous is not None and previous[1] == "."
            kept = keyword.iskeyword(text) or keyword.issoftkeyword(text) or after_dot
            norm = text if kept or (bound is not None and text not in bound) else "V"
        else:
            norm = text
        tokens.append(norm)
        spans.append((offset(tok.start), offset(tok.end)))
        previous = (kind, text)
    return tokens, spans


def _document(tokens: list[str]) -> str:
    """The tokens as a string of one character each (the alphabet is shared by the run)."""
    return "".join(_ALPHABET.setdefault(t, chr(0x100 + len(_ALPHABET))) for t in tokens)


def template_hashes(template: str) -> np.ndarray:
    """The hashes of every k-gram (not only the winnowed ones) of the release's template for a
    cell: boilerplate."""
    tokens, _ = normalize(template)
    doc = _document(tokens)
    return hashed_kgrams(doc, K) if len(doc) >= K else np.array([], dtype=np.int64)


def fingerprint(source: str, boilerplate: np.ndarray) -> CellPrint:
    """The :class:`CellPrint` of one answer cell, without the k-grams of ``boilerplate``."""
    tokens, spans = normalize(source)
    cell = CellPrint(source, tokens, spans)
    doc = _document(tokens)
    if len(doc) >= K:
        # the boilerplate is taken out here, not by get_document_fingerprints: copydetect 0.5.0
        # calls np.intersect1d(..., assume_unique=True) on winnowed hashes that repeat, and its
        # indices then point past the array (IndexError) or at the wrong fingerprints
        hashes, index = get_document_fingerprints(doc, K, WINDOW)
        template = set(boilerplate.tolist())
        cell.hashes = {h for h in hashes if h not in template}
        cell.index = {h: i for h, i in index.items() if h not in template}
        cell.coverage = int(get_token_coverage(cell.index, K, len(doc)))
        cell.covers = {h: frozenset(p for i in idx for p in range(int(i), int(i) + K))
                       for h, idx in cell.index.items()}
    return cell


def shared_slices(a: CellPrint, b: CellPrint) -> tuple[np.ndarray, np.ndarray]:
    """The token ranges of ``a`` and of ``b`` made of fingerprints the two share: two arrays of
    shape (2, n), starts then ends (copydetect's ``get_copied_slices``)."""
    idx_a, idx_b = find_fingerprint_overlap(a.hashes, b.hashes, a.index, b.index)
    return get_copied_slices(idx_a, K), get_copied_slices(idx_b, K)


def shared_tokens(a: CellPrint, b: CellPrint) -> tuple[int, int]:
    """How many tokens of ``a`` and of ``b`` lie in runs the two cells share: the total length
    of :func:`shared_slices` (the union of the shared k-grams' token ranges), computed from sets
    because it runs for every pair of every cell."""
    common = a.hashes & b.hashes
    if not common:
        return 0, 0
    return (len(frozenset().union(*(a.covers[h] for h in common))),
            len(frozenset().union(*(b.covers[h] for h in common))))


def marked_segments(cell: CellPrint, slices: np.ndarray) -> list[tuple[str, bool]]:
    """``cell.source`` cut into ``(text, shared)`` pieces: the tokens in the token ranges of
    ``slices`` are shared, joined across the spaces between them on a line; comments,
    docstrings and line breaks between them stay unmarked (they were never compared)."""
    spans = []
    for start, end in zip(*(slices if len(slices) else ([], [])), strict=True):
        spans += cell.spans[int(start):min(int(end), len(cell.spans))]
    merged: list[list[int]] = []
    for start, end in sorted(set(spans)):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        elif merged and not cell.source[merged[-1][1]:start].strip(" \t"):
            merged[-1][1] = end  # only spaces between two shared tokens
        else:
            merged.append([start, end])
    segments, at = [], 0
    for start, end in merged:
        if start > at:
            segments.append((cell.source[at:start], False))
        segments.append((cell.source[start:end], True))
        at = end
    if at < len(cell.source):
        segments.append((cell.source[at:], False))
    return segments
