# ruff: noqa: RUF001 - the test texts are in other scripts on purpose
"""Extractor 2.9.0 and later: the weaker page types (forum, product, listing, collection,
documentation), each change on a small synthetic page made up for the test (no benchmark
page)."""

from __future__ import annotations

from preserve.extract import dom, extract, regions, scoring
from preserve.extract.blocks import render_blocks

POSTS = [
    "Ich habe den Router gestern neu gestartet, aber die Verbindung bricht nach ein paar "
    "Minuten immer wieder ab, und im Protokoll steht nichts Auffälliges.",
    "Hast du schon versucht, die Firmware zu aktualisieren? Bei mir hat das genau dieses "
    "Problem gelöst, nachdem ich wochenlang herumprobiert hatte.",
    "Danke, das war es tatsächlich: nach dem Update läuft die Verbindung seit zwei Tagen "
    "stabil, und die Geschwindigkeit ist sogar besser geworden.",
]
ARTICLE_DE = [
    "Im Anfängerkurs lernen Sie an acht Abenden die Grundlagen, vom ersten Bild bis zur "
    "fertigen Mappe, in kleinen Gruppen mit höchstens acht Teilnehmenden.",
    "Der Aufbaukurs richtet sich an alle, die schon Erfahrung haben und ihre Technik mit "
    "Licht, Schatten und Farbe an eigenen Projekten vertiefen wollen.",
    "Im Werkstattkurs arbeiten Sie frei an Ihren Vorhaben, und die Kursleitung berät Sie "
    "einzeln, wann immer Sie Fragen zur Umsetzung oder zum Material haben.",
]
SIGNATURE = "Mein Rechner: Ryzen 7, 32 GB RAM, zwei Bildschirme und viel zu viele Kabel"


def _thread(signature_class: str) -> str:
    posts = "".join(
        f'<div class="post" id="p{i}"><div class="postbody"><p class="author">Nutzer{i}</p>'
        f'<div class="content">{text}</div>'
        f'<div class="{signature_class}">{SIGNATURE} ({i})</div></div></div>'
        for i, text in enumerate(POSTS)
    )
    return (
        "<!DOCTYPE html><html lang=de><head><title>Verbindung bricht ab</title></head><body>"
        '<div id="page-body"><h2 class="topic-title">Verbindung bricht ab</h2>'
        f"{posts}</div></body></html>"
    )


def test_forum_signatures_are_not_post_text() -> None:
    # A signature under every post (phpBB ``signature``, XenForo ``message-signature``) is the
    # member's profile line, the same under each of their posts: not what the post says.
    for name in ("signature", "message-signature", "postsignature"):
        text = extract(_thread(name)).text
        for post in POSTS:
            assert post in text, name
        assert "Ryzen" not in text, name


def _thread_with_cards(card_class: str) -> str:
    posts = "".join(
        f'<article class="message message--post"><div class="message-inner">'
        f'<div class="message-cell {card_class}"><h4 class="message-name">Nutzer{i}</h4>'
        f"<div>Mitglied seit März 2019</div><dl><dt>Beiträge</dt><dd>{1200 + i}</dd></dl>"
        f"<dl><dt>Wohnort</dt><dd>Kleinstadt am See</dd></dl></div>"
        f'<div class="message-cell message-main"><div class="message-content">'
        f"<div class=\"bbWrapper\">{text}</div></div></div></div></article>"
        for i, text in enumerate(POSTS)
    )
    return (
        "<!DOCTYPE html><html lang=de><head><title>Verbindung bricht ab</title></head><body>"
        f'<div class="p-body"><h1>Verbindung bricht ab</h1>{posts}</div></body></html>'
    )


def test_forum_member_cards_are_not_post_text() -> None:
    # The member's card beside every post (XenForo ``message-user``, phpBB ``postprofile``,
    # ``user-details``, ``userinfo``): rank, join date and post count, not the post.
    for name in ("message-cell--user message-user", "postprofile", "user-details", "userinfo"):
        text = extract(_thread_with_cards(name)).text
        for post in POSTS:
            assert post in text, name
        assert "Mitglied seit" not in text, name
        assert "Kleinstadt" not in text, name


FINE_PRINT = [
    "Finanzierung nur für qualifizierte Kundinnen und Kunden, vorbehaltlich einer "
    "Bonitätsprüfung; der effektive Jahreszins hängt von der gewählten Laufzeit ab.",
    "Die angegebenen Rücknahmewerte sind Schätzungen und hängen vom Zustand, vom Baujahr und "
    "von der Ausstattung des Geräts ab, das Sie uns zurückgeben.",
    "Angebote gelten nur, solange der Vorrat reicht, und können nicht mit anderen Aktionen "
    "oder Gutscheinen kombiniert werden, die im selben Zeitraum laufen.",
    "Alle Preise verstehen sich inklusive der gesetzlichen Mehrwertsteuer und zuzüglich der "
    "Versandkosten, sofern bei dem jeweiligen Artikel nichts anderes angegeben ist.",
]


def test_a_page_footer_of_fine_print_is_left_out_of_the_main_region_however_long() -> None:
    # A listing of short item cards above a page footer of long legal notes: the footer holds
    # most of the region's text and all of its prose, and a box with half of the text and
    # the prose was never left out as chrome. The page's own footer (role=contentinfo, or a
    # <footer> outside any sectioning element) is fine print however much of the page it
    # holds; a <footer> inside an <article> is not the page's.
    items = "".join(
        f'<li class="tile"><h3>Gerät {i}</h3><p>Ab {100 + i} € oder {5 + i} € im Monat</p>'
        f"<p>Farbe: Silber, Speicher: {64 * (i + 1)} GB</p></li>"
        for i in range(4)
    )
    notes = "".join(f"<p>{text}</p>" for text in FINE_PRINT)
    for footer, left_out in (
        (f'<div class="legal" role="contentinfo">{notes}</div>', True),
        (f"<footer>{notes}</footer>", True),
        (f"<article><p>Einleitung</p><footer>{notes}</footer></article>", False),
    ):
        html = (
            "<!DOCTYPE html><html lang=de><head><title>Alle Geräte</title></head><body>"
            f'<div class="app"><div class="catalog"><h1>Alle Geräte</h1>'
            f'<ul class="grid">{items}</ul></div>{footer}</div></body></html>'
        )
        root = dom.parse(html)
        assert root is not None
        body = root.find("body")
        assert body is not None
        blocks = render_blocks(body)
        totals = scoring.aggregate(body, blocks)
        kept = regions.region_blocks(body, blocks, totals, prune=True)
        text = "\n".join(block.text for block in kept)
        assert "Gerät 3" in text and "Speicher: 256 GB" in text, footer
        assert ("Bonitätsprüfung" not in text) is left_out, footer


def test_a_non_modal_dialog_named_like_an_overlay_is_an_overlay() -> None:
    # Popup plugins mark their overlays role=dialog aria-modal=false and name them
    # ``*-overlay``: a registration form shown on a click, not the page. A non-modal dialog
    # named otherwise (a drawer, a sheet) is still read as part of the page.
    services = "".join(
        f"<h2>Kurs {i}</h2><p>{text}</p>" for i, text in enumerate(ARTICLE_DE)
    )
    form = "".join(
        f"<p>Bitte geben Sie Ihren Namen, Ihre Anschrift und die gewünschte Kurszeit an, "
        f"damit wir Ihre Anmeldung Nummer {i} bearbeiten können.</p>"
        for i in range(8)
    )
    for name, dropped in (("box box-overlay theme-1", True), ("drawer sheet", False)):
        html = (
            "<!DOCTYPE html><html lang=de><head><title>Kurse</title></head><body>"
            f"<main><h1>Kurse</h1>{services}</main>"
            f'<div role="dialog" aria-modal="false" class="{name}">'
            f"<h2>Anmeldung</h2>{form}</div></body></html>"
        )
        text = extract(html).text
        assert ARTICLE_DE[2] in text, name
        assert ("Anmeldung Nummer" not in text) is dropped, name


def test_an_iframe_written_self_closing_in_noscript_does_not_swallow_the_page() -> None:
    # A tag manager's pixel, ``<noscript><iframe ... /></noscript>``, first thing in the body.
    # A browser runs scripts and reads the <noscript> as text, so the page shows; read with
    # scripting off the <iframe> (not a void element: "/>" does not close it) ran to the end
    # of the document as raw text, and the page had no text but its menu.
    paragraphs = "".join(f"<p>{text}</p>" for text in ARTICLE_DE)
    for pixel in (
        '<noscript><iframe src="https://example.org/ns.html?id=X" height="0" width="0" '
        'style="display:none;visibility:hidden" /></noscript>',
        "<NOSCRIPT><IFRAME src=x></NOSCRIPT>",
        "<noscript><iframe src=x /><textarea></noscript>",
    ):
        html = (
            "<!DOCTYPE html><html lang=de><head><title>Kurse</title></head><body>"
            f"{pixel}<nav><a href=/a>Start</a> <a href=/b>Kurse</a></nav>"
            f"<main><h1>Kurse</h1>{paragraphs}</main></body></html>"
        )
        text = extract(html).text
        for sentence in ARTICLE_DE:
            assert sentence in text, pixel


def test_labels_of_text_entry_fields_go_with_the_fields() -> None:
    # A contact form under the content: its fields are removed, and their labels ("Ihr Name",
    # "E-Mail-Adresse (Pflichtfeld)") said nothing without them. The labels of radio buttons
    # and check boxes are options (a product's sizes) and stay.
    paragraphs = "".join(f"<p>{text}</p>" for text in ARTICLE_DE)
    html = (
        "<!DOCTYPE html><html lang=de><head><title>Kurse</title></head><body>"
        f"<main><h1>Kurse</h1>{paragraphs}<form>"
        '<div><label for="f1">Ihr vollständiger Name</label><input id="f1" type="text"></div>'
        "<div><label>E-Mail-Adresse (Pflichtfeld) <input type=email></label></div>"
        '<div><label for="f3">Ihre Nachricht an uns</label><textarea id="f3"></textarea></div>'
        '<div><input type="radio" id="s1" name="s"><label for="s1">Abendkurs dienstags</label>'
        '<input type="radio" id="s2" name="s"><label for="s2">Wochenendkurs samstags</label>'
        "</div></form></main></body></html>"
    )
    text = extract(html).text
    assert ARTICLE_DE[0] in text
    assert "vollständiger Name" not in text
    assert "Pflichtfeld" not in text
    assert "Nachricht an uns" not in text
    assert "Abendkurs dienstags" in text and "Wochenendkurs samstags" in text


CODE_COMMENTS = (
    "хранить записи тридцать дней",
    "уровень подробности для отладки",
    "файл журнала рядом с программой",
)


def test_comments_in_code_blocks_stay_in_the_code() -> None:
    # Syntax highlighters name a program's comments ``hljs-comment`` (highlight.js),
    # ``token comment`` (Prism) or ``c1`` (Pygments): names of the code's parts, not of the
    # page's. Read as page hints, they made the code's comments look like reader comments.
    html = (
        "<!DOCTYPE html><html lang=ru><head><title>Настройка журнала</title></head><body>"
        '<nav><a href="/">Главная</a> <a href="/docs">Документация</a></nav>'
        "<main><h1>Настройка журнала</h1><p>Журнал записывает каждое событие сервера в "
        "отдельный файл, и его можно настроить так, чтобы старые записи удалялись "
        "автоматически через заданное число дней.</p>"
        f'<pre><code class="language-python"><span class="hljs-comment"># {CODE_COMMENTS[0]}'
        '</span>\n<span class="hljs-keyword">import</span> logging\n'
        f'<span class="token comment"># {CODE_COMMENTS[1]}</span>\n'
        "logging.basicConfig(level=logging.DEBUG)\n"
        f'<span class="c1"># {CODE_COMMENTS[2]}</span>\n'
        'handler = logging.FileHandler(<span class="s2">"server.log"</span>)\n</code></pre>'
        "<p>После перезапуска сервер начинает писать новый файл, а прежний сохраняется с "
        "датой в имени, так что ничего не теряется при обновлении.</p></main>"
        "<footer>© Проект</footer></body></html>"
    )
    text = extract(html).text
    for comment in CODE_COMMENTS:
        assert f"# {comment}\n" in text, comment
    assert "logging.basicConfig(level=logging.DEBUG)" in text


def test_a_listing_of_link_cards_is_not_pruned_away() -> None:
    # Every job offer is one link card; read as link lists, they were all pruned, and the
    # short introduction above them (long enough not to count as "nothing found") was all
    # that was left of the page. Pruning that would keep under a tenth of the main region's
    # text is not done.
    cards = "".join(
        f'<li class="job-card"><a href="/jobs/{i}"><h3>ソフトウェアエンジニア {i}</h3>'
        f"<span>株式会社サンプル{i}</span> <span>東京都</span> "
        f"<span>年収 {500 + i * 10} 万円</span><span>リモート可</span></a></li>"
        for i in range(80)
    )
    intro = (
        "リモートで働けるエンジニアの求人を毎日更新しています。経験や希望の働き方に合わせて、"
        "気になる求人を探してください。新しい求人は毎朝九時に追加され、応募の締め切りが近いもの"
        "から順に並んでいます。気になる求人は保存しておくと、締め切りの前日にお知らせが届きます。"
        "会員登録は無料で、履歴書の下書きも保存できます。面接の日程は画面から直接調整できます。"
        "採用が決まった後も、入社までの手続きを担当者が丁寧にお手伝いしますので、初めての転職"
        "でも安心です。"
    )
    html = (
        "<!DOCTYPE html><html lang=ja><head><title>求人一覧</title></head><body>"
        '<header><a href="/">トップ</a> <a href="/login">ログイン</a></header>'
        f'<div class="page"><p class="intro">{intro}</p><ul class="jobs">{cards}</ul></div>'
        '<footer><a href="/about">会社概要</a></footer></body></html>'
    )
    result = extract(html)
    assert intro in result.text
    for i in (0, 41, 79):
        assert f"株式会社サンプル{i}" in result.text
    assert "会社概要" not in result.text
