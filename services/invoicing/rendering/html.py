"""The HTML document: one Jinja2 template with inline styles, autoescaped."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, select_autoescape

from services.invoicing.rendering.view import DocumentView

_ENV = Environment(
    loader=PackageLoader("services.invoicing.rendering", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    keep_trailing_newline=True,
)


def render(view: DocumentView) -> str:
    return _ENV.get_template("document.html.j2").render(doc=view)
