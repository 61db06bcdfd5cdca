"""Student HTML and markdown made harmless before the instructor's browser renders them.

The Formgrader renders the autograded notebook, and ``nbgrader generate_feedback`` the feedback
HTML, with nbconvert's HTML exporter, which passes a cell output's ``text/html`` through as is,
inlines ``image/svg+xml``, runs ``application/javascript``, and renders markdown (written answers
and ``text/markdown`` outputs) with raw HTML and any link scheme, ``javascript:`` included. In
the Formgrader that script would run with the instructor's token.

:class:`SanitizeStudentHTML` is nbconvert's :class:`~nbconvert.preprocessors.SanitizeHTML`
(bleach; nbconvert 7.17) applied to everything the student controls:

- **outputs of every code cell** (the kernel is the student's, whoever wrote the cell): types in
  ``safe_output_keys`` stay (plain text, LaTeX, JSON, PNG, JPEG); ``text/html`` is cleaned with
  bleach; ``text/markdown`` is rendered to HTML and cleaned (it becomes ``text/html``); every
  other type (JavaScript, SVG, widget views, ...) is dropped;
- **cells the student wrote** (answer cells, and cells without nbgrader metadata): markdown is
  rendered to HTML by nbconvert's own markdown renderer, cleaned, and stored as one HTML block
  (rendering it again passes it through unchanged, so no markdown can reappear in it); raw cells
  are cleaned; attachments other than PNG, JPEG and GIF images are dropped, and those are shown
  as base64 ``data:`` images (the only ``data:`` URL kept, see :data:`IMAGE_DATA_URL`);
- **notebook metadata**: ``widgets`` (embedded widget state, which the exporter would load
  JavaScript for) is dropped;
- **output metadata and execution counts** (:func:`clean_output_metadata`): nbconvert's classic
  template, which the Formgrader and the feedback extend, writes ``width={{ width }}`` *without
  quotes* from an output's metadata, so ``{'image/png': {'width': '1 onerror=...'}}`` became a
  live attribute, and ``In [{{ execution_count }}]`` unescaped. Only the keys of :data:`KNOWN_KEYS`
  with values of the right type stay (``width``/``height`` finite numbers); a cell's and an
  output's ``execution_count`` is an integer or None. A notebook that needed any of this gets the
  trusted flag ``unsafe-markup`` (:data:`UNSAFE_MARKUP`) on the cell; its score is untouched.

The templates the Formgrader and the feedback use (``autograder/tools/templates/nbconvert``, set in
``nbgrader_config.py``) quote every attribute and carry a Content-Security-Policy: a second and a
third line of defence.

Cells the instructor locked are left alone: nbgrader restores them from the gradebook.
Allowed: the tags of :data:`TAGS`, the attributes of :data:`ATTRIBUTES`, and the URL schemes
``http``, ``https``, ``mailto`` and ``attachment`` (so no ``javascript:``, ``data:``,
``vbscript:``); ``<script>``, ``<style>``, ``<iframe>``, event handlers (``onerror``, ...) and
``style`` attributes are escaped or removed. ``nbgrader_config.py`` runs it in
``c.Autograde.autograde_preprocessors`` right after the Execute step, and in
``c.GenerateFeedback.preprocessors``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import bleach
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from nbconvert.preprocessors.sanitize import SanitizeHTML
from traitlets import Bool, default

from autograder.kernel.output_limits import label
from autograder.notebooks import add_flag

#: HTML tags a student's answer or output may use.
TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "del", "div", "dl", "dt", "em",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "ol", "p", "pre",
    "s", "samp", "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th",
    "thead", "tr", "u", "ul",
})
#: Attributes allowed per tag (no event handlers, no ``style``).
ATTRIBUTES = {
    "a": ["href", "title"], "abbr": ["title"], "img": ["src", "alt", "title", "width", "height"],
    "td": ["colspan", "rowspan", "align"], "th": ["colspan", "rowspan", "align"],
    "ol": ["start"], "code": ["class"], "span": ["class"], "div": ["class"],
}
#: URL schemes allowed in ``href`` and ``src``; ``data:`` only as :data:`IMAGE_DATA_URL`.
PROTOCOLS = frozenset({"http", "https", "mailto", "attachment", "data"})
#: Attachment types kept on a student's markdown cell.
IMAGE_ATTACHMENTS = frozenset({"image/png", "image/jpeg", "image/gif"})
#: The one ``data:`` URL allowed: a base64 PNG, JPEG or GIF as the ``src`` of an ``<img>`` (a
#: raster image runs no script; SVG could).
IMAGE_DATA_URL = re.compile(r"data:image/(?:png|jpeg|gif);base64,[A-Za-z0-9+/]*={0,2}")
#: What bleach strips from a URL before it reads the scheme (its ``sanitize_uri_value``).
_URL_NOISE = re.compile(r"[`\000-\040\177-\240\s]+|[^\x00-\x7f]")


def _allowed_attribute(tag: str, name: str, value: str) -> bool:
    """bleach's attribute test: :data:`ATTRIBUTES`, and a ``data:`` URL only as an image."""
    if name not in ATTRIBUTES.get(tag, ()):
        return False
    if _URL_NOISE.sub("", value).lower().startswith("data:"):
        return tag == "img" and name == "src" and IMAGE_DATA_URL.fullmatch(value) is not None
    return True


def clean_html(html: str) -> str:
    """``html`` with only :data:`TAGS`, :data:`ATTRIBUTES` and :data:`PROTOCOLS` left (bleach);
    anything else is escaped, so it shows as text."""
    return bleach.clean(html, tags=TAGS, attributes=_allowed_attribute, protocols=PROTOCOLS,
                        strip=False, strip_comments=True)


class _StudentRenderer(IPythonRenderer):
    """nbconvert's markdown renderer, which embeds only the cell's own image attachments.

    nbconvert's renderer raises ``InvalidNotebook`` for an ``attachment:`` it is not given (it
    was given none, so a written answer with a pasted picture stopped the student's grading) and
    embeds any type of attachment. Here a PNG, JPEG or GIF attachment of the cell becomes a
    :data:`IMAGE_DATA_URL`; any other ``attachment:`` URL is left as it is (a picture the browser
    cannot load). No file is ever read (``embed_images`` stays off).

    ``_embed_image_or_attachment`` is a private method of nbconvert 7.17 (issue 19 §5: a test
    of the upstream contract should name it); if it is renamed, nbconvert's raises again for a
    pasted picture and ``tests/test_markup_safe.py`` fails.
    """

    def _embed_image_or_attachment(self, src: str) -> str:
        if not src.startswith("attachment:"):
            return src
        bundle = self.attachments.get(src[len("attachment:"):])
        for mime in sorted(IMAGE_ATTACHMENTS) if isinstance(bundle, Mapping) else ():
            data = bundle.get(mime)
            data = "".join(data) if isinstance(data, list) else data
            url = f"data:{mime};base64," + "".join(data.split()) if isinstance(data, str) else ""
            if IMAGE_DATA_URL.fullmatch(url):
                return url
        return src


def clean_markdown(source: str, attachments: Mapping | None = None) -> str:
    """Markdown rendered to HTML with nbconvert's renderer, cleaned, as one HTML block.

    ``attachments`` is the cell's (name -> mimebundle): its PNG, JPEG and GIF images are shown
    (see :class:`_StudentRenderer`). The result is itself valid markdown that nbconvert renders to
    the same HTML: it is a single ``<div>`` line (newlines become ``&#10;``), which CommonMark
    passes through raw.
    """
    renderer = _StudentRenderer(escape=False, attachments=dict(attachments or {}))
    html = clean_html(MarkdownWithMath(renderer=renderer).render(source))
    return '<div class="student-markdown">' + html.replace("\n", "&#10;") + "</div>"


#: The trusted flag of a cell whose output metadata or execution counts had to be cleaned.
UNSAFE_MARKUP = "unsafe-markup"
#: Largest image ``width`` or ``height`` kept, in CSS pixels (a 100 000 px image is no display).
MAX_DIMENSION = 100_000
#: Longest text value kept (``alt``, ``root``), in characters.
MAX_TEXT = 1_000


def _dimension(value: object) -> bool:
    # the range test comes first: math.isfinite(10**400) raises OverflowError, the range test not
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and 0 <= value <= MAX_DIMENSION and math.isfinite(value))


def _flag_value(value: object) -> bool:
    return isinstance(value, bool)


def _short_text(value: object) -> bool:
    return isinstance(value, str) and len(value) <= MAX_TEXT


def _background(value: object) -> bool:
    return isinstance(value, str) and value in ("light", "dark")


#: The output metadata keys nbformat, nbconvert and IPython use (``IPython.display.Image``:
#: ``width``, ``height``, ``unconfined``, ``alt``; matplotlib-inline: ``needs_background``;
#: ``IPython.display.JSON``: ``expanded``, ``root``), each with the test its value must pass. A key
#: may sit at the top level of an output's metadata or under one of the output's mimetypes
#: (nbconvert's ``get_metadata`` reads both). Everything else is dropped, among it ``filenames``
#: (an ``<img src>``) and ``text/html``'s ``isolated`` (an ``<iframe>``).
KNOWN_KEYS = {"width": _dimension, "height": _dimension, "unconfined": _flag_value,
              "alt": _short_text, "needs_background": _background, "expanded": _flag_value,
              "root": _short_text}


def clean_output_metadata(metadata: object, mimetypes) -> tuple[dict, list[str]]:
    """An output's metadata reduced to :data:`KNOWN_KEYS` with valid values.

    Parameters
    ----------
    metadata : object
        The output's ``metadata`` as the kernel sent it: normally a dict whose keys are
        :data:`KNOWN_KEYS` or mimetypes (each mapping to such a dict), but anything is accepted.
    mimetypes : collection of str
        The mimetypes of the output's ``data`` once sanitized; metadata under any other mimetype
        belongs to nothing that is rendered and is dropped without counting as a problem.

    Returns
    -------
    clean : dict
        A new dict: known keys with valid values (``width``/``height`` finite numbers in
        ``[0, MAX_DIMENSION]``), at the top level and under the output's own mimetypes. Values
        are copied, never shared with ``metadata``.
    problems : list of str
        One plain description per entry removed that a template could have rendered (a known
        key with a bad value, an unknown key, metadata that is not a dict). The descriptions
        hold no text of the student's: only our key names and the output's sanitized mimetypes.
    """
    if metadata is None:
        return {}, []
    if not isinstance(metadata, Mapping):
        return {}, ["metadata that is not a dict"]
    clean: dict = {}
    problems: list[str] = []

    def keep(where: str, key: object, value: object, into: dict) -> None:
        check = KNOWN_KEYS.get(key) if isinstance(key, str) else None
        if check is None:
            problems.append(f"an unknown key{where}")
        elif check(value):
            into[key] = value
        else:
            problems.append(f"{key}{where} of the wrong type or size")

    for key, value in metadata.items():
        if isinstance(key, str) and key in mimetypes:
            if not isinstance(value, Mapping):
                problems.append(f"{key} metadata that is not a dict")
                continue
            inner: dict = {}
            for sub, sub_value in value.items():
                keep(f" under {key}", sub, sub_value, inner)
            if inner:
                clean[key] = inner
        elif isinstance(key, str) and "/" in key and key not in KNOWN_KEYS:
            continue  # metadata of a mimetype the sanitizer dropped: nothing renders it
        else:
            keep("", key, value, clean)
    return clean, problems


def _is_count(value: object) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def clean_code_cell(cell) -> list[str]:
    """Clean a sanitized code cell's output metadata and execution counts in place.

    ``execution_count`` (the cell's, and each output's) becomes None unless it is an integer:
    the classic template writes ``In [{{ execution_count }}]`` unescaped. Each output's
    ``metadata`` goes through :func:`clean_output_metadata`.

    Parameters
    ----------
    cell : NotebookNode
        A code cell whose outputs were already sanitized (their ``data`` holds safe types only).

    Returns
    -------
    list of str
        The problems found (see :func:`clean_output_metadata`); empty for honest output.
    """
    problems: list[str] = []
    if not _is_count(cell.get("execution_count")):
        cell["execution_count"] = None
        problems.append("the cell's execution count is not a number")
    for out in cell.get("outputs", []):
        if "execution_count" in out and not _is_count(out["execution_count"]):
            out["execution_count"] = None
            problems.append("an output's execution count is not a number")
        if "metadata" in out:
            data = out.get("data")
            clean, found = clean_output_metadata(out["metadata"],
                                                 data if isinstance(data, Mapping) else ())
            out["metadata"] = clean
            problems += found
    return problems


def _is_student_cell(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return not meta or bool(meta.get("solution"))


class SanitizeStudentHTML(SanitizeHTML):
    """nbconvert's ``SanitizeHTML`` for what students control (see the module text)."""

    @default("enabled")
    def _default_enabled(self) -> bool:  # nbconvert preprocessors are off unless enabled
        return True

    strip = Bool(False, help="Escape unsafe markup (shown as text) rather than remove it.").tag(
        config=True)

    @default("tags")
    def _default_tags(self) -> list[str]:
        return sorted(TAGS)

    @default("attributes")
    def _default_attributes(self) -> dict:
        return ATTRIBUTES

    def sanitize_html_tags(self, html_str: str) -> str:
        """Clean ``html_str`` (a string or a list of lines) with :func:`clean_html`."""
        return clean_html("".join(html_str) if isinstance(html_str, list) else html_str)

    def preprocess(self, nb, resources):
        nb.metadata.pop("widgets", None)
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type == "code":
            for out in cell.get("outputs", []):
                data = out.get("data")
                if isinstance(data, dict) and "text/markdown" in data:
                    md = data.pop("text/markdown")
                    md = "".join(md) if isinstance(md, list) else str(md)
                    data.setdefault("text/html", clean_markdown(md))
            cell.outputs = self.sanitize_code_outputs(cell.get("outputs", []))
            problems = clean_code_cell(cell)
            if problems:
                add_flag(cell, UNSAFE_MARKUP,
                         f"{label(cell, cell_index)}: removed from the outputs, which the "
                         f"Formgrader and feedback pages would have rendered as markup: "
                         f"{'; '.join(sorted(set(problems))[:5])}")
            return cell, resources
        if not _is_student_cell(cell):
            return cell, resources
        attachments = cell.get("attachments")
        kept = {name: {k: v for k, v in bundle.items() if k in IMAGE_ATTACHMENTS}
                for name, bundle in (attachments.items() if isinstance(attachments, Mapping) else ())
                if isinstance(bundle, Mapping)}
        kept = {name: bundle for name, bundle in kept.items() if bundle}
        if attachments is not None:
            cell["attachments"] = kept
        if cell.cell_type == "markdown":
            source = "".join(cell.source) if isinstance(cell.source, list) else cell.source
            cell.source = clean_markdown(source, kept)
        elif cell.cell_type == "raw":
            cell.source = self.sanitize_html_tags(cell.source)
        return cell, resources


__all__ = ["KNOWN_KEYS", "UNSAFE_MARKUP", "SanitizeStudentHTML", "clean_code_cell", "clean_html",
           "clean_markdown", "clean_output_metadata"]
