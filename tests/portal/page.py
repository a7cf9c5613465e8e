"""A page of the portal, parsed: its language, text, links and anything inline."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

#: Attributes that hold a URL.
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "srcset", "poster", "data"}


@dataclass
class Page(HTMLParser):
    """``Page.parse(html)``: the ``lang`` of ``<html>``, every URL, the text, the ids,
    and the inline scripts, styles and event handlers found (there should be none)."""

    lang: str | None = None
    urls: list[str] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    inline: list[str] = field(default_factory=list)
    text: str = ""
    _in_script: bool = False

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    @classmethod
    def parse(cls, html: str) -> Page:
        page = cls()
        page.feed(html)
        page.close()
        return page

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "html":
            self.lang = values.get("lang")
        if tag == "style":
            self.inline.append("<style> element")
        if tag == "script":
            if not values.get("src"):
                self.inline.append("inline <script>")
            self._in_script = True
        for name, value in attrs:
            if name == "style":
                self.inline.append(f"style attribute on <{tag}>")
            if name.startswith("on"):
                self.inline.append(f"{name} handler on <{tag}>")
            if name in URL_ATTRIBUTES and value is not None:
                self.urls.append(value)
                if value.strip().lower().startswith("javascript:"):
                    self.inline.append(f"javascript: URL on <{tag}>")
            if name == "id" and value:
                self.ids.add(value)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        self.text += data + " "

    @property
    def words(self) -> str:
        """The text, every run of white space one space."""
        return " ".join(self.text.split())
