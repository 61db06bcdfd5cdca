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
  are cleaned; attachments other than PNG, JPEG and GIF images are dropped;
- **notebook metadata**: ``widgets`` (embedded widget state, which the exporter would load
  JavaScript for) is dropped.

Cells the instructor locked are left alone: nbgrader restores them from the gradebook.
Allowed: the tags of :data:`TAGS`, the attributes of :data:`ATTRIBUTES`, and the URL schemes
``http``, ``https``, ``mailto`` and ``attachment`` (so no ``javascript:``, ``data:``,
``vbscript:``); ``<script>``, ``<style>``, ``<iframe>``, event handlers (``onerror``, ...) and
``style`` attributes are escaped or removed. ``nbgrader_config.py`` runs it in
``c.Autograde.autograde_preprocessors`` right after the Execute step, and in
``c.GenerateFeedback.preprocessors``.
"""

from __future__ import annotations

import bleach
from nbconvert.filters.markdown import markdown2html
from nbconvert.preprocessors.sanitize import SanitizeHTML
from traitlets import Bool, default

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
#: URL schemes allowed in ``href`` and ``src``.
PROTOCOLS = frozenset({"http", "https", "mailto", "attachment"})
#: Attachment types kept on a student's markdown cell.
IMAGE_ATTACHMENTS = frozenset({"image/png", "image/jpeg", "image/gif"})


def clean_html(html: str) -> str:
    """``html`` with only :data:`TAGS`, :data:`ATTRIBUTES` and :data:`PROTOCOLS` left (bleach);
    anything else is escaped, so it shows as text."""
    return bleach.clean(html, tags=TAGS, attributes=ATTRIBUTES, protocols=PROTOCOLS,
                        strip=False, strip_comments=True)


def clean_markdown(source: str) -> str:
    """Markdown rendered to HTML with nbconvert's renderer, cleaned, as one HTML block.

    The result is itself valid markdown that nbconvert renders to the same HTML: it is a single
    ``<div>`` line (newlines become ``&#10;``), which CommonMark passes through raw.
    """
    html = clean_html(markdown2html(source))
    return '<div class="student-markdown">' + html.replace("\n", "&#10;") + "</div>"


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
            return cell, resources
        if not _is_student_cell(cell):
            return cell, resources
        if cell.cell_type == "markdown":
            source = "".join(cell.source) if isinstance(cell.source, list) else cell.source
            cell.source = clean_markdown(source)
        elif cell.cell_type == "raw":
            cell.source = self.sanitize_html_tags(cell.source)
        attachments = cell.get("attachments", {})
        for name in list(attachments):
            kept = {k: v for k, v in attachments[name].items() if k in IMAGE_ATTACHMENTS}
            if kept:
                attachments[name] = kept
            else:
                del attachments[name]
        return cell, resources


__all__ = ["SanitizeStudentHTML", "clean_html", "clean_markdown"]
