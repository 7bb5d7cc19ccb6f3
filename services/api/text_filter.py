"""``POST /search`` with a cql2-text filter (what pystac-client sends for a string filter), for both backends.

stac-fastapi's POST model takes CQL2-JSON only; :func:`search_post_model` builds it on a base that reads a text
filter into its CQL2-JSON tree (the ``cql2`` package) first, so the backends receive JSON (as does the next
link's body).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, model_validator
from stac_fastapi.api.models import create_post_request_model
from stac_fastapi.types.extension import ApiExtension

from services.api.cql2_sql import parse_filter


class TextFilter(BaseModel):
    """A ``filter`` given as a string (cql2-text, or CQL2-JSON in a string) becomes its CQL2-JSON tree."""

    @model_validator(mode="before")
    @classmethod
    def text_as_json(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("filter"), str):
            return data
        lang = data.get("filter-lang", data.get("filter_lang")) or "cql2-text"
        if lang not in ("cql2-text", "cql2-json"):
            raise ValueError(f"filter-lang must be cql2-text or cql2-json, not {lang!r}")
        tree = parse_filter(data["filter"], lang)  # FilterError (a ValueError): a 400 naming the problem
        rest = {key: value for key, value in data.items() if key not in ("filter", "filter-lang", "filter_lang")}
        return {**rest, "filter": tree, "filter-lang": "cql2-json"}


def search_post_model(extensions: list[ApiExtension], base: type[BaseModel]) -> type[BaseModel]:
    """stac-fastapi's ``POST /search`` model of ``extensions`` on ``base``, taking text filters too."""
    with_text = type(base.__name__, (TextFilter, base), {"__module__": __name__, "__doc__": base.__doc__})
    return create_post_request_model(extensions, base_model=with_text)
