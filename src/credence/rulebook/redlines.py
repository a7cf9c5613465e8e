"""The lines Credence does not cross, as terms matched against a rulebook's words.

A record type or service about a prohibited ground (political opinion or expression,
criticism of the government, association, religion or belief, ethnicity, health,
sexuality, trade-union membership, online speech) is refused, and so is a restriction
that reaches someone other than the subject. :func:`prohibited_grounds` and
:func:`third_party_term` match the term lists below against codes, names and free text
(README: "What Credence is not").
"""

from __future__ import annotations

import re

__all__ = ["PROHIBITED_GROUNDS", "THIRD_PARTY_TERMS", "prohibited_grounds", "third_party_term"]

#: Terms that mark a record type or service as being about a prohibited ground.
#:
#: Matching is on whole words of the code (split on ``_``), name and description,
#: case-insensitively, after punctuation is turned into spaces:
#:
#: * ``word`` matches the word itself and its plural (``word``, ``words``,
#:   ``wordes``), but not longer words: ``post`` matches "posts" but not "postal" or
#:   "posted"; ``race`` does not match "racing".
#: * ``stem*`` matches any word that starts with the stem: ``religio*`` matches
#:   "religion" and "religious".
#: * Several words form a phrase that must appear in that order: ``trade union*``.
#:
#: The list errs on the side of refusing. A legitimate record type that trips it (a
#: bankruptcy "petition") is renamed in neutral words ("insolvency filing"); the list
#: is not relaxed for it. Terms were chosen so that civic records which only sound
#: close pass: a blood donation is a civic act, not health data.
PROHIBITED_GROUNDS: dict[str, tuple[str, ...]] = {
    "political opinion or expression": (
        "politic*",
        "protest",
        "protested",
        "protesting",
        "protester",
        "protestor",
        "petition*",
        "dissent*",
        "dissident*",
        "demonstration",
        "demonstrator",
        "activis*",
        "opposition",
        "ideolog*",
        "vote",
        "voted",
        "voting",
        "voter",
        "election",
        "electoral",
        "democra*",
        "party member*",
        "communist*",
        "separatis*",
        "slogan*",
    ),
    "criticism of the government": (
        "criticis*",
        "criticiz*",
        "critic",
        "anti government",
        "antigovernment",
        "subversi*",
        "sedition",
        "seditious",
        "disloyal*",
        "unpatriotic",
        "whistleblow*",
    ),
    "association or assembly": (
        "association",
        "assembly",
        "assemblies",
        "rally",
        "rallies",
        "public gathering",
        "mass gathering",
        "illegal gathering",
    ),
    "religion or belief": (
        "religio*",
        "faith",
        "worship*",
        "church*",
        "mosque*",
        "temple",
        "pray*",
        "buddhis*",
        "christian*",
        "muslim*",
        "islam*",
        "catholic*",
        "protestant*",
        "taois*",
        "daois*",
        "falun*",
        "cult",
        "sect",
        "atheis*",
        "spiritual*",
        "clergy",
        "imam*",
        "priest*",
        "bible*",
        "quran*",
        "koran*",
        "ramadan",
        "halal",
        "belief",
        "believer",
        "pilgrim*",
        "missionar*",
    ),
    "ethnicity or race": (
        "ethnic*",
        "race",
        "racial*",
        "minority",
        "minorities",
        "uyghur*",
        "uighur*",
        "tibetan*",
        "indigenous",
        "ancestry",
        "skin colour",
        "skin color",
    ),
    "health or medical condition": (
        "health*",
        "medic*",
        "disease*",
        "illness*",
        "hiv",
        "diagnos*",
        "psychiatr*",
        "disabilit*",
        "disabled",
        "pregnan*",
        "genetic*",
        "covid*",
        "vaccin*",
        "infect*",
        "epidemic*",
        "pandemic*",
        "cancer*",
        "diabet*",
        "addict*",
        "hospital",
        "hospitalised",
        "hospitalized",
        "hospitalisation",
        "hospitalization",
        "patient",
        "clinic*",
        "therap*",
        "symptom*",
    ),
    "sexuality or sexual orientation": (
        "sexual*",
        "sex",
        "homosex*",
        "bisex*",
        "heterosex*",
        "lgbt*",
        "gay",
        "lesbian*",
        "transgender*",
        "queer*",
        "gender identity",
    ),
    "trade-union membership": (
        "union member*",
        "trade union*",
        "labour union*",
        "labor union*",
        "unionis*",
        "unioniz*",
        "collective bargaining",
        "strike",
        "striker",
        "walkout*",
        "industrial action",
    ),
    "online speech or social media": (
        "online speech",
        "online comment*",
        "online post*",
        "online activit*",
        "internet speech",
        "internet post*",
        "social media",
        "weibo*",
        "wechat*",
        "douyin*",
        "tiktok*",
        "twitter*",
        "tweet*",
        "retweet*",
        "repost*",
        "blog*",
        "vlog*",
        "post",
        "rumour*",
        "rumor*",
        "netizen*",
        "hashtag*",
        "browsing histor*",
        "search histor*",
        "vpn",
    ),
}

#: Terms that mark a restriction as reaching someone other than the subject: Credence
#: sanctions no third party (no restriction of children's schooling, for one). Checked
#: on restriction services only; a reward may well be a family discount.
THIRD_PARTY_TERMS: tuple[str, ...] = (
    "family",
    "families",
    "relative",
    "spouse",
    "child",
    "children",
    "school*",
    "kindergarten*",
    "university admission*",
)

#: Fixed phrases that contain a prohibited term but are not about the ground; they are
#: blanked out before matching. "Bad faith" litigation is a judicial matter, not belief;
#: a company's unpaid "medical insurance" contributions are not anyone's health data;
#: a "banking association" reporting a default is a source, not an assembly.
_BENIGN_PHRASES: tuple[str, ...] = (
    "good faith",
    "bad faith",
    "financial health",
    "medical insurance",
    "health insurance",
    "minority shareholder*",
    "minority stake*",
    "minority interest*",
    "industry association*",
    "banking association*",
    "trade association*",
    "assembly line*",
)


def _term_pattern(term: str) -> str:
    words = []
    for word in term.split():
        if word.endswith("*"):
            words.append(re.escape(word[:-1]) + r"[a-z0-9]*")
        else:
            words.append(re.escape(word))
    if not term.endswith("*"):
        words[-1] += "(?:e?s)?"  # plural of the last word
    return r"\b" + " ".join(words) + r"\b"


_GROUND_PATTERNS: dict[str, re.Pattern[str]] = {
    ground: re.compile("|".join(_term_pattern(t) for t in terms))
    for ground, terms in PROHIBITED_GROUNDS.items()
}
_THIRD_PARTY_PATTERN = re.compile("|".join(_term_pattern(t) for t in THIRD_PARTY_TERMS))
_BENIGN_PATTERN = re.compile("|".join(_term_pattern(p) for p in _BENIGN_PHRASES))


def _normalise(text: str) -> str:
    # Underscores split codes into words; every other non-alphanumeric is a space too,
    # so "anti-government" and "anti_government" both read "anti government".
    words = re.sub(r"[^a-z0-9]+", " ", text.lower()).split()
    return _BENIGN_PATTERN.sub(" ", " ".join(words))


def prohibited_grounds(text: str) -> list[tuple[str, str]]:
    """Every prohibited ground ``text`` is about, with the first word that showed it.

    ``text`` may be a code (``attended_protest``), a name or free text. Returns
    ``(ground, matched words)`` pairs in the order of :data:`PROHIBITED_GROUNDS`; an
    empty list means the text is clear.
    """
    normal = _normalise(text)
    found = []
    for ground, pattern in _GROUND_PATTERNS.items():
        match = pattern.search(normal)
        if match:
            found.append((ground, match.group(0)))
    return found


def third_party_term(text: str) -> str | None:
    """The first words of ``text`` that reach a third party (:data:`THIRD_PARTY_TERMS`),
    or ``None`` if the text is clear."""
    match = _THIRD_PARTY_PATTERN.search(_normalise(text))
    return match.group(0) if match else None
