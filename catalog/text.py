"""Text helpers: record HTML to safe CommonMark, slugs, resolution strings, phone numbers."""

from __future__ import annotations

import re
import unicodedata

import markdownify
import nh3

_SAFE_TAGS = {
    "p", "br", "b", "strong", "i", "em", "u", "ul", "ol", "li", "a", "sub", "sup",
    "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "code", "pre",
    "table", "thead", "tbody", "tr", "td", "th",
}  # fmt: skip
_INDENT = "\u2003\u2002\u00a0\u3000 \t"


def html_to_markdown(html: str) -> str:
    """Convert a record's HTML fragment to CommonMark that renders no markup from the source.

    The HTML is sanitized first (nh3: scripts, styles, event attributes and unsafe URLs go),
    then converted with markdownify, escaping any literal ``<`` so that text which merely
    looks like markup stays text.
    """
    if not html or not html.strip():
        return ""
    clean = nh3.clean(
        html,
        tags=_SAFE_TAGS,
        attributes={"a": {"href"}},
        url_schemes={"http", "https", "mailto"},
        link_rel=None,
    )
    text = markdownify.markdownify(clean, heading_style="ATX", escape_misc=True, bullets="-")
    paragraphs = (line.strip(_INDENT) for line in text.splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(paragraphs)).strip()


_STOPWORDS = {
    "a", "an", "the", "of", "in", "on", "at", "along", "from", "to", "and", "for", "by", "with",
    "dataset", "data", "set", "scale",
}  # fmt: skip


def slugify(text: str, max_words: int = 12) -> str:
    """A readable, stable identifier from English text ('' when nothing ASCII is left)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    words = [w for w in re.findall(r"[a-z0-9]+", ascii_text) if w not in _STOPWORDS]
    return "-".join(words[:max_words])


_LENGTH_UNITS = {"": 1.0, "m": 1.0, "米": 1.0, "km": 1000.0, "公里": 1000.0, "千米": 1000.0, "cm": 0.01}


def parse_gsd(text: str) -> float | None:
    """Spatial resolution in metres from strings such as '20', '30米', '120m', '1 km'; None if absent."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(m|米|km|公里|千米|cm)?\s*", text or "", flags=re.IGNORECASE)
    if not match:
        return None
    return float(match.group(1)) * _LENGTH_UNITS[(match.group(2) or "").lower()]


_TIME_UNITS = {
    "秒": "S", "second": "S", "分钟": "M", "minute": "M", "小时": "H", "hour": "H", "时": "H",
    "日": "D", "天": "D", "day": "D", "daily": "D", "周": "W", "week": "W", "weekly": "W",
    "月": "M", "month": "M", "monthly": "M", "季": "Q", "quarter": "Q",
    "年": "Y", "year": "Y", "yearly": "Y", "annual": "Y",
}  # fmt: skip


def parse_time_resolution(text: str) -> str | None:
    """Temporal resolution as an ISO 8601 duration ('日' -> 'P1D', '1月' or 'month' -> 'P1M')."""
    match = re.fullmatch(r"\s*(\d+)?\s*([^\d\s]+?)s?\s*", (text or "").lower())
    if not match or match.group(2) not in _TIME_UNITS:
        return None
    count, unit = int(match.group(1) or 1), _TIME_UNITS[match.group(2)]
    if unit == "Q":
        count, unit = count * 3, "M"
    time_part = unit in "HS" or (unit == "M" and match.group(2) in ("分钟", "minute"))
    return f"PT{count}{unit}" if time_part else f"P{count}{unit}"


def e164_phone(text: str, country_code: str = "86") -> str | None:
    """A Chinese phone number in E.164 ('0931-4967592' -> '+869314967592'), None if not one."""
    digits = re.sub(r"[\s\-()]", "", text or "")
    if digits.startswith("+"):
        return digits if re.fullmatch(r"\+[1-9]\d{3,14}", digits) else None
    if not digits.isdigit():
        return None
    national = digits.lstrip("0")
    number = f"+{country_code}{national}"
    return number if 7 <= len(national) <= 11 and re.fullmatch(r"\+[1-9]\d{3,14}", number) else None
