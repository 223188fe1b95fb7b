"""Jinja2 environment (autoescape ON) and the one function that renders a page."""
from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from .template_filters import install_filters


def create_environment() -> Environment:
    env = Environment(
        loader=PackageLoader("viewer", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    install_filters(env)
    return env


def render(request: Request, template: str, context: dict, *, status: int = 200) -> HTMLResponse:
    ctx = request.app.state.viewer
    values = {"request_path": request.url.path, "principal": None}
    values.update(context)
    values["csrf"] = getattr(values["principal"], "csrf", None)
    page = ctx.env.get_template(template).render(**values)
    return HTMLResponse(page, status_code=status)
