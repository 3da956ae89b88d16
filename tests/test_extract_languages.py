# ruff: noqa: RUF001 - the test texts are in other scripts on purpose
"""Nothing depends on English words: pages in German, Arabic, Persian (right-to-left),
Russian, Chinese and Japanese, built for these tests, extract like English ones. CJK text has
no spaces between words, so every length is counted in characters."""

from __future__ import annotations

import json

import pytest

from preserve.extract import extract

TEXTS: dict[str, list[str]] = {
    "de": [
        "Der Ausschuss hat am Dienstag seinen Bericht veröffentlicht, und die Zeugen "
        "schildern die Festnahmen in allen Einzelheiten.",
        "Die Dokumente wurden mit Gerichtsakten verglichen, und die Behörden wurden um eine "
        "Stellungnahme gebeten, die bis heute aussteht.",
        "Anwälte der Familien fordern eine unabhängige Untersuchung, weil die Angaben seit "
        "Monaten übereinstimmen.",
    ],
    "ar": [
        "نشرت اللجنة تقريرها يوم الثلاثاء، ويصف الشهود حالات الاعتقال بالتفصيل الكامل.",
        "قورنت الوثائق بسجلات المحاكم، وطُلب من السلطات الرد على الأسئلة، لكنها لم ترد بعد.",
        "طالب محامو العائلات بتحقيق مستقل، لأن الروايات متطابقة منذ أشهر طويلة.",
    ],
    "fa": [
        "کمیته گزارش خود را روز سه‌شنبه منتشر کرد، و شاهدان بازداشت‌ها را با جزئیات شرح دادند.",
        "اسناد با پرونده‌های دادگاه مقایسه شد، و از مقامات خواسته شد که پاسخ دهند.",
        "وکلای خانواده‌ها خواستار تحقیق مستقل شدند، زیرا روایت‌ها ماه‌هاست یکسان است.",
    ],
    "ru": [
        "Комитет опубликовал доклад во вторник, и свидетели подробно описали задержания.",
        "Документы сверили с материалами судов, а власти попросили дать ответ, но его нет.",
        "Адвокаты семей требуют независимого расследования, потому что показания совпадают.",
    ],
    "zh": [
        "委员会于周二发表了报告，证人详细描述了拘留的经过。",
        "文件已与法院记录核对，当局被要求作出回应，但至今没有答复。",
        "家属的律师要求进行独立调查，因为几个月来的陈述一致。",
    ],
    "ja": [
        "委員会は火曜日に報告書を公表し、証人たちは拘束の様子を詳しく語った。",
        "文書は裁判記録と照合され、当局に回答が求められたが、まだ返答はない。",
        "家族の弁護士は独立した調査を求めている。証言は何か月も一致しているからだ。",
    ],
}
RTL = {"ar", "fa"}


def _chrome(lang: str) -> tuple[str, str]:
    menu = "".join(f'<li><a href="/{lang}/s{i}">{lang}-menu-{i}</a></li>' for i in range(8))
    related = "".join(f'<li><a href="/{lang}/r{i}">{lang}-related-{i}</a></li>' for i in range(6))
    top = f'<header><nav class="main-menu"><ul>{menu}</ul></nav></header>'
    bottom = (
        f'<aside class="sidebar"><ul>{related}</ul></aside>'
        f"<footer><p>{lang}-footer © 2026</p></footer>"
    )
    return top, bottom


def _page(lang: str, body: str, head: str = "") -> str:
    top, bottom = _chrome(lang)
    direction = ' dir="rtl"' if lang in RTL else ""
    return (
        f'<!DOCTYPE html><html lang="{lang}"{direction}><head><meta charset="utf-8">{head}'
        f"</head><body>{top}{body}{bottom}</body></html>"
    )


def _no_chrome(lang: str, text: str) -> None:
    assert f"{lang}-menu-" not in text
    assert f"{lang}-related-" not in text
    assert f"{lang}-footer" not in text


@pytest.mark.parametrize("lang", sorted(TEXTS))
def test_an_article_in_every_language(lang: str) -> None:
    paragraphs = "".join(f"<p>{text}</p>" for text in TEXTS[lang])
    raw = _page(lang, f"<article><h1>{TEXTS[lang][0][:12]}</h1>{paragraphs}</article>")
    result = extract(raw.encode("utf-8"))
    assert result.text.split("\n\n")[-3:] == TEXTS[lang]
    assert result.language == lang
    _no_chrome(lang, result.text)


@pytest.mark.parametrize("lang", ["zh", "ja"])
def test_short_cjk_paragraphs_are_paragraphs(lang: str) -> None:
    # Each paragraph is 25-40 characters: short in characters, a full sentence in CJK.
    body = f'<div class="main-text">{"".join(f"<p>{t}</p>" for t in TEXTS[lang] * 2)}</div>'
    result = extract(_page(lang, body))
    for text in TEXTS[lang]:
        assert text in result.text
    _no_chrome(lang, result.text)


@pytest.mark.parametrize("lang", sorted(TEXTS))
def test_a_forum_thread_in_every_language(lang: str) -> None:
    posts = "".join(
        f'<article class="post" id="post-{i}"><div class="author">{lang}-user-{i}</div>'
        f'<time datetime="2026-02-0{i + 1}">2026-02-0{i + 1}</time>'
        f'<div class="post-body"><p>{text}</p></div></article>'
        for i, text in enumerate(TEXTS[lang])
    )
    head = f'<script type="application/ld+json">{json.dumps({"@type": "QAPage"})}</script>'
    result = extract(_page(lang, f'<main><div class="thread">{posts}</div></main>', head))
    assert result.page_type == "forum"
    positions = [result.text.index(text) for text in TEXTS[lang]]
    assert positions == sorted(positions)  # every post, in order
    authors = [result.text.index(f"{lang}-user-{i}") for i in range(len(TEXTS[lang]))]
    assert authors == sorted(authors)  # with its author (and date) where marked up
    assert all(a < p for a, p in zip(authors, positions, strict=True))
    assert "2026-02-01" in result.text
    _no_chrome(lang, result.text)


@pytest.mark.parametrize("lang", ["ar", "zh", "de"])
def test_a_listing_in_other_languages(lang: str) -> None:
    cards = "".join(
        f'<li class="item"><h3><a href="/{lang}/a{i}">{text[:20]}</a></h3><p>{text}</p></li>'
        for i, text in enumerate(TEXTS[lang] * 2)
    )
    head = f'<script type="application/ld+json">{json.dumps({"@type": "ItemList"})}</script>'
    result = extract(_page(lang, f'<main><ul class="results">{cards}</ul></main>', head))
    assert result.page_type == "listing"
    for text in TEXTS[lang]:
        assert text in result.text
    _no_chrome(lang, result.text)


def test_right_to_left_marks_and_persian_commas_survive() -> None:
    text = "\u200fگزارش، شاهدان، و اسناد\u200f " + TEXTS["fa"][0]
    result = extract(_page("fa", f"<article><p>{text}</p><p>{TEXTS['fa'][1]}</p></article>"))
    assert "گزارش، شاهدان، و اسناد" in result.text
