"""Output metadata that nbconvert's classic template wrote as markup (issue 19 §3).

A cell runs ``display({'image/png': ...}, raw=True, metadata={'image/png': {'width': '1 onerror=...'}})``.
The classic template, which nbgrader's Formgrader and feedback pages extend, wrote
``width={{ width | escape_html }}`` without quotes, so ``onerror`` became an attribute of the
``<img>``, and the PNG, which is not one, fired it. In the Formgrader, served by the instructor's
Jupyter server, that script reads the ``_xsrf`` cookie and writes a file into the course root
through the contents API.

:func:`attack_js` is that script. It announces itself three ways, each of which the browser tests
watch for: a console message holding the marker, ``window.__markup_attack``, and a ``PUT`` to
``/api/contents/<marker>.txt`` (whose answer it logs too). It holds no space and no ``>`` (an
unquoted attribute value ends at either), and reaches the attribute as ``eval(atob('...'))``:
``escape_html`` turns the quotes into ``&#39;``, which the browser decodes back.
"""

from __future__ import annotations

import base64

#: What the script's console messages and the file it writes are named after.
MARKER = "markup-attack-7f3c"
#: The file the script writes through the contents API, relative to the server's root.
WRITTEN = f"{MARKER}.txt"


def attack_js(marker: str = MARKER) -> str:
    """The script a student hides in output metadata: it logs ``marker``, sets
    ``window.__markup_attack`` and PUTs ``<marker>.txt`` into the server's root with the page's
    ``_xsrf`` cookie."""
    return (
        "(function(){"
        f"console.log('{marker}');"
        "window.__markup_attack=true;"
        "var m=document.cookie.match(/(?:^|;\\s*)_xsrf=([^;]+)/);"
        f"fetch('/api/contents/{marker}.txt',{{method:'PUT',credentials:'same-origin',"
        "headers:{'Content-Type':'application/json','X-XSRFToken':m?decodeURIComponent(m[1]):''},"
        "body:JSON.stringify({type:'file',format:'text',content:'written by a student'})})"
        f".then(function(r){{console.log('{marker}-status-'+r.status)}});"
        "})()"
    )


def handler(marker: str = MARKER) -> str:
    """``attack_js`` as the value of an unquoted attribute: ``eval(atob('<base64>'))``."""
    encoded = base64.b64encode(attack_js(marker).encode()).decode()
    return f"eval(atob('{encoded}'))"


#: Not a PNG (nor a JPEG): the browser fails to decode it and fires the image's ``error`` event.
NOT_AN_IMAGE = "AAAA"

#: What the student's cell displays, as ``(data, metadata)``: the issue's case (``width`` under
#: the mimetype), ``height`` at the top level of a JPEG's metadata with a width too large for a
#: float, a quote in ``alt``, a file name (``filenames``, which the classic template uses as the
#: ``<img src>``), an ``isolated`` HTML output (an ``<iframe>`` in the classic template), and a
#: nested key nothing uses.
DISPLAYS = [
    ({"image/png": NOT_AN_IMAGE}, {"image/png": {"width": "1 onerror=" + handler()}}),
    ({"image/jpeg": NOT_AN_IMAGE}, {"height": "1 onerror=" + handler(),
                                    "image/jpeg": {"width": 10**400}}),
    ({"image/png": NOT_AN_IMAGE}, {"image/png": {"alt": '" onerror="' + handler() + '" x="'},
                                   "filenames": {"image/png": 'x" onerror="' + handler() + '"'}}),
    ({"text/html": "<b>isolated</b>"}, {"text/html": {"isolated": True},
                                        "anything": {"nested": [1, {"deep": 2}]}}),
]
#: The lines a student appends to an answer cell: one ``display(..., raw=True)`` per entry of
#: :data:`DISPLAYS`.
TRICK = "\nfrom IPython.display import display\n" + "".join(
    f"display({data!r}, raw=True, metadata={metadata!r})\n" for data, metadata in DISPLAYS)


#: A ``text/html`` output that bleach would never let through: the browser tests write it into an
#: autograded notebook by hand (as if the sanitizer had missed it) to see the
#: Content-Security-Policy stop it on its own.
INLINE_HANDLER_HTML = f'<img src="data:image/png;base64,{NOT_AN_IMAGE}" onerror="{handler()}">'
