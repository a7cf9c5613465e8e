"""The lines Credence does not cross, as a lexicon matched against a rulebook's words.

What a record type may be about is decided first by the catalogues of conduct domains
and statutes (:mod:`credence.rulebook.domains`): a type must claim a domain and a
statute from them, and nothing there concerns opinion, the press, assembly, petitioning
or belief. This module is the second line. Whatever domain a type claims, it is refused
if its code, name, description or unit *speaks of* a protected ground, in English or in
Chinese (:data:`PROTECTED_GROUNDS`): opinion or expression, the press, assembly or
association, petitioning, religion or belief, ethnicity, health, sexuality, union
membership, online speech and circumventing censorship. A service whose words speak of
one is refused too, and so is a restriction that reaches someone other than the subject
(:data:`THIRD_PARTY_TERMS`).

A lexicon reads words, not meaning: it is one synonym away from missing a paraphrase,
which is why it is not the first line. It therefore errs towards refusing: it lists each
ground's synonyms, inflections and the words that typically come with it, and a
legitimate type that trips it is renamed in neutral words rather than the lexicon
relaxed (README: "What Credence is not").
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "PROHIBITED_GROUNDS",
    "PROTECTED_GROUNDS",
    "THIRD_PARTY_TERMS",
    "prohibited_grounds",
    "third_party_term",
]

# How a term is written (English):
#
# * ``word`` matches the word and its plural (``word``, ``words``, ``wordes``) but not
#   longer words: ``race`` does not match "racing".
# * ``stem*`` matches any word that starts with the stem: ``religio*`` matches
#   "religion" and "religious".
# * ``(a|b*)`` matches either alternative, each as above.
# * Several words form a phrase that must appear in that order: ``trade union*``.
# * ``...`` between two words allows up to three other words between them:
#   ``bypass* ... filter*`` matches "bypass internet filtering".
#
# Matching is case-insensitive, on the text after Unicode compatibility normalisation
# (full-width letters read as ASCII), with every character other than a-z and 0-9 read
# as a space: codes split on ``_`` and "anti-government" reads "anti government".
#
# A term with Chinese characters is matched as a sequence of characters anywhere in the
# text (Chinese has no spaces between words), whitespace ignored; ``…`` allows up to
# eight characters between its parts: ``损害…形象``.

_OFFICIALDOM = "(official*|government*|authorit*|leader*|party|state|regime|cadre*|polic*)"

#: The protected grounds and the terms that show a text speaks of one.
PROTECTED_GROUNDS: dict[str, tuple[str, ...]] = {
    "opinion or expression": (
        "politic*",
        "protest",
        "protested",
        "protesting",
        "protester*",
        "protestor*",
        "dissent*",
        "dissident*",
        "activis*",
        "opposition",
        "ideolog*",
        "vote",
        "voted",
        "voting",
        "voter*",
        "election*",
        "electoral",
        "democra*",
        "party member*",
        "communist*",
        "separatis*",
        "slogan*",
        "criticis*",
        "criticiz*",
        "critic",
        f"critical ... {_OFFICIALDOM}",
        "anti (government*|party|state|regime)",
        "antigovernment",
        "subversi*",
        "sedition",
        "seditious",
        "disloyal*",
        f"loyal* ... {_OFFICIALDOM}",
        "patriot*",
        "unpatriotic",
        "whistleblow*",
        "opinion",
        "expression",
        "speech",
        "remark",
        "free speech",
        f"negative (comment*|remark*|view*|statement*|word*) ... {_OFFICIALDOM}",
        "negative comment*",
        f"comment* ... {_OFFICIALDOM}",
        f"(defam*|slander*|insult*|smear*|mock*|ridicul*|satiri*) ... {_OFFICIALDOM}",
        f"image of the {_OFFICIALDOM}",
        f"question* ... {_OFFICIALDOM}",
        "human rights",
        "rights (defen*|lawyer*)",
        "weiquan",
        "stability maint*",
        "open letter*",
        "banner*",
        "meme*",
        "言论",
        "批评",
        "批判",
        "非议",
        "妄议",
        "议论",
        "抹黑",
        "诋毁",
        "政治",
        "政见",
        "异见",
        "异议人士",
        "反对政府",
        "反党",
        "颠覆",
        "煽动",
        "分裂国家",
        "抗议",
        "维权",
        "人权",
        "民主",
        "选举",
        "投票",
        "口号",
        "标语",
        "爱国",
        "忠诚",
        "敏感",
        "质疑",
        "政府形象",
        "国家形象",
        "损害…形象",
        "言论自由",
        "维稳",
        "公开信",
        "横幅",
    ),
    "the press": (
        "press",
        "journalis*",
        "reporter*",
        "correspondent*",
        "news*",
        "media",
        "editor*",
        "interview* ... (reporter*|journalis*|press|media|foreign|overseas)",
        "(press|media|foreign|overseas) interview*",
        "(gave|give|gives|giving|granted) ... interview*",
        "publication*",
        "publisher*",
        "publishing",
        "self published",
        "pamphlet*",
        "leaflet*",
        "handbill*",
        "flyer*",
        "samizdat",
        "broadcast*",
        "magazine*",
        "periodical*",
        "记者",
        "采访",
        "新闻",
        "媒体",
        "报社",
        "报刊",
        "报纸",
        "杂志",
        "出版",
        "刊物",
        "传单",
        "小册子",
        "宣传品",
        "禁书",
    ),
    "assembly or association": (
        "assembly",
        "assemblies",
        "gathering*",
        "gathered",
        "rally",
        "rallies",
        "rallied",
        "rallying",
        "demonstration*",
        "demonstrator*",
        "marched",
        "marching",
        "protest march*",
        "sit in",
        "sitin*",
        "vigil*",
        "commemorat*",
        "mourning",
        "mourner*",
        "crowd",
        "mob",
        "association*",
        "societ*",
        "(unregistered|unapproved|unauthori*|illegal|banned|unlawful|underground) "
        "(group*|organi*|club*|network*|circle*|movement*|meeting*|event*)",
        "non governmental organi*",
        "ngo",
        "civil society",
        "collective action*",
        "mass (incident*|event*)",
        "集会",
        "游行",
        "示威",
        "聚集",
        "聚众",
        "静坐",
        "结社",
        "社团",
        "社会组织",
        "非法组织",
        "未登记…组织",
        "悼念",
        "烛光",
        "纪念活动",
        "群体性事件",
        "集体行动",
    ),
    "petitioning": (
        "petition*",
        "xinfang",
        "shangfang",
        "letters and visits",
        "(collective|joint|mass) complaint*",
        "(complain*|appeal*|grievance*) ... (higher|superior|central|provincial|capital|beijing)",
        "(higher|superior) level (authorit*|office*|government*|organ*)",
        "(higher|superior) (authorit*|government*)",
        "leapfrog*",
        "skip level",
        "grievance*",
        "上访",
        "信访",
        "越级",
        "请愿",
        "集体投诉",
        "联名信",
        "联名上书",
        "闹访",
        "缠访",
        "非访",
    ),
    "religion or belief": (
        "religio*",
        "faith",
        "worship*",
        "church*",
        "mosque*",
        "temple",
        "shrine*",
        "pagoda*",
        "synagogue*",
        "pray*",
        "buddhis*",
        "christian*",
        "muslim*",
        "islam*",
        "catholic*",
        "protestant*",
        "jewish",
        "judaism",
        "hindu*",
        "sikh*",
        "taois*",
        "daois*",
        "falun*",
        "qigong",
        "cult",
        "sect",
        "heretic*",
        "heresy",
        "superstiti*",
        "atheis*",
        "spiritual*",
        "clergy",
        "imam*",
        "priest*",
        "monk*",
        "monaster*",
        "nun",
        "lama*",
        "dalai",
        "bible*",
        "quran*",
        "koran*",
        "scripture*",
        "sermon*",
        "ramadan",
        "fasting",
        "hajj",
        "zakat",
        "halal",
        "hijab*",
        "headscar*",
        "veil",
        "veiled",
        "beard",
        "belief",
        "believer",
        "pilgrim*",
        "missionar*",
        "proselyti*",
        "evangel*",
        "baptis*",
        "theolog*",
        "divine",
        "deity",
        "deities",
        "god",
        "goddess*",
        "ritual*",
        "incense",
        "宗教",
        "信仰",
        "信教",
        "教会",
        "教堂",
        "寺庙",
        "寺院",
        "清真",
        "礼拜",
        "祈祷",
        "祷告",
        "斋戒",
        "斋月",
        "封斋",
        "佛教",
        "基督",
        "伊斯兰",
        "天主",
        "穆斯林",
        "道教",
        "法轮",
        "邪教",
        "传教",
        "念经",
        "诵经",
        "神职",
        "迷信",
        "朝觐",
        "头巾",
        "面纱",
        "蒙面",
        "经文",
    ),
    "ethnicity": (
        "ethnic*",
        "race",
        "racial*",
        "racis*",
        "minority",
        "minorities",
        "uyghur*",
        "uighur*",
        "tibetan*",
        "kazakh*",
        "hui",
        "mongol*",
        "han chinese",
        "indigenous",
        "ancestry",
        "descent",
        "tribe*",
        "tribal",
        "skin colo*",
        "民族",
        "种族",
        "维吾尔",
        "维族",
        "藏族",
        "回族",
        "哈萨克族",
        "肤色",
        "族裔",
    ),
    "health": (
        "health*",
        "medic*",
        "disease*",
        "illness*",
        "sick",
        "sickness*",
        "mental*",
        "psychiatr*",
        "psycholog*",
        "schizo*",
        "bipolar",
        "autis*",
        "dementia",
        "epilep*",
        "disorder",
        "hiv",
        "hepatitis",
        "tuberculosis",
        "diagnos*",
        "disabilit*",
        "disabled",
        "pregnan*",
        "abortion*",
        "contracepti*",
        "family planning",
        "birth control",
        "excess birth*",
        "reproducti*",
        "infertil*",
        "fertility",
        "genetic*",
        "dna",
        "covid*",
        "vaccin*",
        "infect*",
        "epidemic*",
        "pandemic*",
        "cancer*",
        "diabet*",
        "addict*",
        "drug (use|user*|abuse)",
        "rehab*",
        "hospital",
        "hospitalised",
        "hospitalized",
        "hospitalisation",
        "hospitalization",
        "patient",
        "clinic*",
        "therap*",
        "symptom*",
        "treated for",
        "疾病",
        "病史",
        "病情",
        "精神病",
        "精神疾病",
        "精神障碍",
        "心理",
        "艾滋",
        "乙肝",
        "传染病",
        "感染者",
        "残疾",
        "怀孕",
        "孕妇",
        "就诊",
        "就医",
        "住院",
        "诊断",
        "治疗",
        "病人",
        "患者",
        "健康状况",
        "体检",
        "基因",
        "计划生育",
        "超生",
        "堕胎",
        "流产",
        "吸毒",
        "戒毒",
        "抑郁",
        "癌症",
        "糖尿病",
    ),
    "sexuality": (
        "sexual*",
        "sex",
        "same sex",
        "same gender",
        "homosex*",
        "bisex*",
        "heterosex*",
        "lgbt*",
        "gay",
        "lesbian*",
        "transgender*",
        "transsexual*",
        "intersex*",
        "queer*",
        "gender (identity|reassign*)",
        "extramarital*",
        "同性恋",
        "同性伴侣",
        "同性婚姻",
        "同性关系",
        "性取向",
        "性倾向",
        "性别认同",
        "跨性别",
        "变性人",
        "变性手术",
        "双性恋",
        "性少数",
        "婚外情",
    ),
    "union membership": (
        "union member*",
        "trade union*",
        "(labour|labor|workers|independent) union*",
        "unionis*",
        "unioniz*",
        "collective bargaining",
        "strike",
        "striker*",
        "walkout*",
        "walk out",
        "work stoppage*",
        "go slow*",
        "industrial action*",
        "(labour|labor|workers) (organi*|group*|association*|committee*|council*)",
        "工会",
        "罢工",
        "怠工",
        "集体谈判",
        "劳工组织",
        "工人组织",
        "讨薪",
    ),
    "online speech": (
        "online (speech|comment*|post*|remark*|statement*|activit*|content|article*|"
        "message*|video*|opinion*|rumour*|rumor*|criticis*|expression)",
        "(comment*|post|posted|posting|spread*|shar*|wrote|writ*|said|spoke|remark*) ... online",
        "internet (speech|post*|comment*|content|activit*|usage|use)",
        "on the internet",
        "social media",
        "social network*",
        "chat group*",
        "group chat*",
        "chat room*",
        "chatroom*",
        "private chat*",
        "message board*",
        "(online|internet) forum*",
        "bbs",
        "weibo*",
        "wechat*",
        "qq",
        "douyin*",
        "tiktok*",
        "twitter*",
        "tweet*",
        "retweet*",
        "repost*",
        "blog*",
        "vlog*",
        "microblog*",
        "post",
        "rumour*",
        "rumor*",
        "netizen*",
        "hashtag*",
        "youtube",
        "facebook",
        "instagram",
        "telegram",
        "whatsapp",
        "bilibili",
        "zhihu",
        "browsing histor*",
        "search histor*",
        "在网络上",
        "在网上",
        "网上言论",
        "网络言论",
        "网上发帖",
        "网络谣言",
        "谣言",
        "造谣",
        "传谣",
        "微博",
        "微信",
        "朋友圈",
        "抖音",
        "贴吧",
        "论坛",
        "博客",
        "发帖",
        "帖子",
        "转发",
        "评论",
        "点赞",
        "群聊",
        "网民",
        "网友",
        "舆论",
        "舆情",
        "推特",
        "脸书",
    ),
    "circumventing censorship": (
        "vpn*",
        "circumvent* ... (censor*|firewall*|block*|filter*|restriction*|control*)",
        "circumvention (tool*|software|app*)",
        "censor*",
        "banned (app*|software|book*|film*|video*|publication*|website*|content)",
        "firewall*",
        "blocked ... (website*|content|platform*|page*)",
        "(foreign|overseas) (website*|site*|internet)",
        "bypass* ... (censor*|firewall*|filter*|block*)",
        "(internet|web|content) filter*",
        "proxy",
        "proxy (server*|tool*|software|service*)",
        "tor",
        "shadowsocks",
        "v2ray",
        "fanqiang",
        "(jump*|scal*|climb*) ... wall",
        "翻墙",
        "科学上网",
        "代理服务器",
        "境外网站",
        "访问外网",
        "浏览外网",
        "防火墙",
        "绕过…(审查|过滤|封锁|屏蔽|监管)",
        "(屏蔽|封锁|被封)…网站",
    ),
}

#: The name this table had before the domain catalogues: the same lexicon.
PROHIBITED_GROUNDS = PROTECTED_GROUNDS

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
    "家属",
    "家人",
    "亲属",
    "配偶",
    "子女",
    "孩子",
    "入学",
)

#: Fixed phrases that contain a protected term but are not about the ground; they are
#: blanked out before matching. "Bad faith" litigation is a judicial matter, not belief;
#: a company's unpaid "medical insurance" contributions are not anyone's health data;
#: a "banking association" reporting a default is a source, not an assembly.
_BENIGN_PHRASES: tuple[str, ...] = (
    "good faith",
    "bad faith",
    "financial health",
    "medical insurance",
    "health insurance",
    "occupational health",
    "health and safety",
    "minority shareholder*",
    "minority stake*",
    "minority interest*",
    "industry association*",
    "banking association*",
    "trade association*",
    "assembly line*",
    "corporate veil",
)

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_WORD_GAP = r"(?: [a-z0-9]+){0,3}"
_CJK_GAP = r".{0,8}"


def _word_pattern(word: str, *, plural: bool) -> str:
    if "(" in word or ")" in word:
        if not (word.startswith("(") and word.endswith(")")):
            raise ValueError(f"malformed alternatives {word!r} in the lexicon")
        alternatives = word[1:-1].split("|")
        return "(?:" + "|".join(_word_pattern(a, plural=plural) for a in alternatives) + ")"
    if word.endswith("*"):
        return re.escape(word[:-1]) + r"[a-z0-9]*"
    return re.escape(word) + ("(?:e?s)?" if plural else "")


def _cjk_part(part: str) -> str:
    if part.startswith("(") and part.endswith(")"):
        return "(?:" + "|".join(re.escape(a) for a in part[1:-1].split("|")) + ")"
    return re.escape(part)


def _term_pattern(term: str) -> str:
    if _CJK.search(term):
        return _CJK_GAP.join(_cjk_part(part) for part in term.split("…"))
    words = term.split()
    out = []
    for i, word in enumerate(words):
        if word == "...":
            out.append(_WORD_GAP)
            continue
        out.append((" " if out else "") + _word_pattern(word, plural=i == len(words) - 1))
    return r"\b" + "".join(out) + r"\b"


def _compile(terms: tuple[str, ...]) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """Two patterns for a list of terms: the English words' and the Chinese ones'."""
    latin = [_term_pattern(t) for t in terms if not _CJK.search(t)]
    cjk = [_term_pattern(t) for t in terms if _CJK.search(t)]
    return (
        re.compile("|".join(latin)) if latin else None,
        re.compile("|".join(cjk)) if cjk else None,
    )


_GROUND_PATTERNS = {ground: _compile(terms) for ground, terms in PROTECTED_GROUNDS.items()}
_THIRD_PARTY_PATTERNS = _compile(THIRD_PARTY_TERMS)
_BENIGN_PATTERN = re.compile("|".join(_term_pattern(p) for p in _BENIGN_PHRASES))


def _normalise(text: str) -> tuple[str, str]:
    """``text`` as the English terms read it (lower-case words of a-z and 0-9, benign
    phrases blanked) and as the Chinese terms read it (whitespace removed)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    words = " ".join(re.sub(r"[^a-z0-9]+", " ", folded).split())
    return _BENIGN_PATTERN.sub(" ", words), re.sub(r"\s+", "", folded)


_Patterns = tuple[re.Pattern[str] | None, re.Pattern[str] | None]


def _search(patterns: _Patterns, normal: tuple[str, str]) -> str | None:
    for pattern, text in zip(patterns, normal, strict=True):
        if pattern is not None:
            match = pattern.search(text)
            if match:
                return match.group(0)
    return None


def prohibited_grounds(text: str) -> list[tuple[str, str]]:
    """Every protected ground ``text`` speaks of, with the first words that showed it.

    ``text`` may be a code (``attended_protest``), a name or free text, in English or
    Chinese. Returns ``(ground, matched words)`` pairs in the order of
    :data:`PROTECTED_GROUNDS`; an empty list means the text is clear.
    """
    normal = _normalise(text)
    found = []
    for ground, patterns in _GROUND_PATTERNS.items():
        matched = _search(patterns, normal)
        if matched is not None:
            found.append((ground, matched))
    return found


def third_party_term(text: str) -> str | None:
    """The first words of ``text`` that reach a third party (:data:`THIRD_PARTY_TERMS`),
    or ``None`` if the text is clear."""
    return _search(_THIRD_PARTY_PATTERNS, _normalise(text))
