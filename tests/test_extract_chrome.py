# ruff: noqa: RUF001 - the test texts are in other scripts on purpose
"""Extractor 2.7.0: chrome that earlier versions kept, each on a small synthetic page made up
for the test (no benchmark page): reader comments under a declared article that outweigh
it, a sidebar made big by link lists, and modal dialogs on a page parked in hidden nodes.
Extractor 2.8.0: a card's header named in BEM style (``tile__header``), which earlier versions
took for page chrome; teasers that made an article look split, and boxes hidden by a helper
named in camelCase (``uiHidden``), which they kept."""

from __future__ import annotations

import json

from lxml import etree

from preserve.extract import dom, extract, hints, regions, scoring
from preserve.extract.blocks import render_blocks
from preserve.extract.clean import _hidden_by_class

ARTICLE = [
    "Die Stadtverwaltung hat am Dienstag ihren Bericht vorgelegt, und er beschreibt auf "
    "vierzig Seiten, wie die Brücke über den Fluss saniert werden soll.",
    "Nach Angaben der Ingenieure sind die Pfeiler in gutem Zustand, doch die Fahrbahn muss "
    "vollständig erneuert werden, was zwei Jahre dauern wird.",
    "Während der Arbeiten wird eine Behelfsbrücke für Fußgänger und Radfahrer gebaut, die "
    "nach dem Ende der Sanierung wieder abgebaut wird.",
]
COMMENTS = [
    "Ich wohne seit dreißig Jahren an der Brücke, und so schlimm wie im letzten Winter war "
    "der Zustand der Fahrbahn noch nie, das kann ich bezeugen.",
    "Zwei Jahre sind eine lange Zeit für die Geschäfte am Ufer, die Stadt sollte ihnen mit "
    "einer Senkung der Gebühren entgegenkommen, finde ich.",
    "Die Behelfsbrücke ist eine gute Idee, aber sie muss auch für Lastenräder breit genug "
    "sein, sonst stehen morgens alle im Stau davor.",
]


def _ld(data: dict[str, object]) -> str:
    return f'<script type="application/ld+json">{json.dumps(data)}</script>'


def _comments(count: int) -> str:
    items = "".join(
        f'<li id="comment-{i}" class="comment"><div class="comment-author">Leser {i}</div>'
        f'<div class="comment-content"><p>{COMMENTS[i % 3]} ({i})</p></div></li>'
        for i in range(count)
    )
    return f'<div id="comments" class="comments-area"><ol class="commentlist">{items}</ol></div>'


def _article_page(head: str) -> str:
    body = "".join(f"<p>{text}</p>" for text in ARTICLE)
    return (
        f"<!DOCTYPE html><html lang=de><head><title>Brücke</title>{head}</head><body>"
        f"<article><h1>Brücke</h1>{body}</article>{_comments(9)}</body></html>"
    )


def test_comments_under_a_declared_article_stay_comments_when_they_outweigh_it() -> None:
    # Nine reader comments hold more text than the post they answer. Before 2.7.0 any comment
    # areas holding half of the page made it a thread, and the article lost to the comments;
    # a page that declares itself an article (and not a discussion) has reader comments.
    page = _article_page(_ld({"@type": "BlogPosting", "headline": "Brücke"}))
    result = extract(page)
    for text in ARTICLE:
        assert text in result.text
    assert "Leser" not in result.text
    assert COMMENTS[0] not in result.text
    assert len(result.comments) == 9
    assert result.comments[0].author == "Leser 0"
    assert result.page_type == "article"


def test_comments_that_outweigh_an_undeclared_page_are_still_its_thread() -> None:
    # Without the declaration the comments are still the content of a page they dominate.
    result = extract(_article_page(""))
    assert result.comments == ()
    assert result.page_type == "forum"
    assert COMMENTS[0] in result.text


# --- a sidebar made big by link lists ----------------------------------------------------

ITEMS = [
    "Салат с печёной свёклой, козьим сыром и грецкими орехами под медовой заправкой",
    "Суп из белых грибов с перловкой, сливками и свежим укропом на каждый день",
    "Пирог с капустой и яйцом из дрожжевого теста, как его пекли у бабушки",
    "Гречка по-купечески со свининой, луком, морковью и томатной пастой",
]
BLURB = (
    "Меня зовут Анна, я готовлю двадцать лет и пишу этот блог о домашней кухне для всех, "
    "кто любит простые рецепты."
)


def _sidebar_page() -> str:
    items = "".join(
        f'<div class="recipe"><h2><a href="/r{i}">{text}</a></h2>'
        f"<p>{text}. Время приготовления {30 + i} минут, на четыре порции.</p></div>"
        for i, text in enumerate(ITEMS)
    )
    archive = "".join(
        f'<li><a href="/archive/{year}/{month}">{year} год, месяц номер {month}</a></li>'
        for year in range(2015, 2027)
        for month in range(1, 7)
    )
    return (
        "<!DOCTYPE html><html lang=ru><head><title>Рецепты</title></head><body>"
        f'<div class="posts"><h1>Рецепты</h1>{items}</div>'
        f'<div id="sidebar-wrap"><div class="sidebar section"><h2>Об авторе</h2><p>{BLURB}</p>'
        f'<h2>Архив</h2><ul class="archive">{archive}</ul></div></div>'
        "</body></html>"
    )


def test_a_sidebar_made_big_by_link_lists_is_still_left_out_of_the_main_region() -> None:
    # The sidebar holds more than half of the region's text (a long archive of links) and
    # one short paragraph of prose. Before 2.7.0 any box with half of the text and some
    # prose was never left out; now it needs half of the region's prose too.
    root = dom.parse(_sidebar_page())
    assert root is not None
    body = root.find("body")
    assert body is not None
    blocks = render_blocks(body)
    totals = scoring.aggregate(body, blocks)
    sidebar = body.find(".//div[@id='sidebar-wrap']")
    assert sidebar is not None
    assert totals[sidebar].text_chars > 0.5 * totals[body].text_chars
    kept = regions.region_blocks(body, blocks, totals, prune=True)
    text = "\n".join(block.text for block in kept)
    for item in ITEMS:
        assert item in text
    assert BLURB not in text
    assert "месяц номер" not in text
    # The whole page: the recipes, not the sidebar.
    result = extract(_sidebar_page())
    assert ITEMS[0] in result.text
    assert BLURB not in result.text


def test_a_box_with_most_of_the_text_and_the_prose_is_never_left_out() -> None:
    # The content misnamed like chrome (a theme calling its content column "sidebar-main")
    # keeps its text: it holds half of the region's text and half of its prose.
    paragraphs = "".join(f"<p>{text}</p>" for text in ARTICLE)
    html = (
        "<!DOCTYPE html><html><head><title>Brücke</title></head><body>"
        f'<div class="sidebar-left"><h1>Brücke</h1>{paragraphs}</div>'
        '<div class="note"><p>Kurz.</p></div></body></html>'
    )
    root = dom.parse(html)
    assert root is not None
    body = root.find("body")
    assert body is not None
    blocks = render_blocks(body)
    kept = regions.region_blocks(body, blocks, scoring.aggregate(body, blocks), prune=True)
    text = "\n".join(block.text for block in kept)
    for sentence in ARTICLE:
        assert sentence in text


# --- modal dialogs on a page parked in hidden nodes ---------------------------------------

PARKED = [
    "在这份报告中，调查人员记录了三个城市的拘留情况，并将证人的陈述与法院档案逐一核对，"
    "以确认每一个细节。",
    "律师们表示，报告证实了家属几个月来所描述的情况，他们要求进行独立调查，并公开所有相关"
    "文件。",
    "有关部门表示将研究这份报告，但没有回答关于具体官员和拘留地点的问题，也没有给出时间表。",
]
MODAL = (
    "注册我们的会员计划，即可享受每月两次的免费配送、生日礼物和会员专享价格，"
    "现在注册还可以获得一张优惠券。"
)


def test_a_modal_dialog_goes_even_when_the_page_is_parked_in_hidden_nodes() -> None:
    # A streaming page parks its rendered content in <div hidden> (most of the page, so the
    # hidden part is kept); a modal overlay beside it (aria-modal, role=dialog) is not the
    # parked page and goes all the same (before 2.7.0 it was kept with the hidden part).
    parked = "".join(f"<p>{text}</p>" for text in PARKED)
    html = (
        "<!DOCTYPE html><html lang=zh><head><title>报告</title></head><body>"
        "<p>加载中</p>"
        f'<div hidden id="S:0"><article><h1>报告</h1>{parked}</article></div>'
        f'<div class="panel" role="dialog" aria-modal="true"><h2>会员</h2><p>{MODAL}</p>'
        f"<p>{MODAL}</p></div>"
        "</body></html>"
    )
    result = extract(html)
    for text in PARKED:
        assert text in result.text
    assert MODAL not in result.text



# --- extractor 2.8.0: a component's header is not the page's header ------------------------

CARDS = [
    ("Полевой дневник наблюдателя, том первый",
     "Записи о выборах в трёх областях, с копиями протоколов."),
    ("Полевой дневник наблюдателя, том второй",
     "Показания свидетелей, собранные на участках летом."),
    ("Архив обращений граждан за прошлый год",
     "Жалобы, ответы ведомств и сроки, в которые они пришли."),
    ("Сборник судебных решений по делам о митингах",
     "Решения районных судов с пометками юристов."),
]


def test_a_card_header_named_in_bem_style_is_not_page_chrome() -> None:
    # Each item card names its title box ``tile__header`` (BEM: the header element of the
    # ``tile`` block). Before 2.8.0 the word "header" in it made the box page chrome, and
    # the main region lost every item's title; the block (``tile``) says what the box is.
    cards = "".join(
        f'<div class="tile"><div class="tile__header tile--header-wide"><h3>'
        f'<a href="/item/{i}">{title}</a></h3></div><p class="tile__text">{blurb}</p></div>'
        for i, (title, blurb) in enumerate(CARDS)
    )
    html = (
        "<!DOCTYPE html><html lang=ru><head><title>Архив</title></head><body>"
        '<header class="site-header"><a href="/">Главная</a> <a href="/o">О нас</a></header>'
        f'<main><h1>Архив</h1><div class="tiles">{cards}</div></main>'
        '<div class="page-header__bar">Подписка на рассылку архива</div>'
        "</body></html>"
    )
    result = extract(html)
    for title, blurb in CARDS:
        assert title in result.text
        assert blurb in result.text
    assert "Главная" not in result.text


def test_a_header_or_footer_block_in_bem_style_is_still_chrome() -> None:
    # Only the element and modifier parts are read as parts of a component: the block part
    # (``site-header``, ``page-footer``) is judged as before.
    def named(cls: str) -> etree._Element:
        return etree.fromstring(f'<div class="{cls}"/>')

    for cls in ("site-header__inner", "page-footer__links", "header", "footer--dark"):
        assert hints.is_unlikely(named(cls)), cls
    for cls in ("tile__header", "card__footer", "bsig--header", "post__footer-meta"):
        assert not hints.is_unlikely(named(cls)), cls


# --- extractor 2.8.0: teasers are not parts of a split article -----------------------------

STORY = [
    "گزارشگران این نهاد در سه ماه گذشته با بیش از صد نفر از ساکنان روستاهای مرزی گفتگو "
    "کردند و شهادت آنان را با عکس‌های ماهواره‌ای و اسناد دادگاه مقایسه کردند تا روشن شود که "
    "خانه‌ها در چه روزهایی و به دست چه کسانی تخریب شده است و چه کسانی مسئول آن بوده‌اند",
    "بر اساس این گزارش دست‌کم چهل خانه در دو هفته تخریب شد و خانواده‌ها بدون هیچ اخطار قبلی "
    "مجبور به ترک محل شدند و بسیاری از آنان هنوز در چادرهای موقت در حاشیه شهر زندگی می‌کنند "
    "و به آب آشامیدنی سالم و مدرسه برای کودکان خود دسترسی ندارند",
    "وکلای خانواده‌ها می‌گویند که این گزارش آنچه را که ساکنان از ماه‌ها پیش می‌گفتند تأیید "
    "می‌کند و از مقامات خواسته‌اند که تحقیقی مستقل آغاز کنند و همه اسناد مربوط به دستور "
    "تخریب را منتشر کنند تا مسئولان آن در برابر دادگاه پاسخگو باشند",
]
TEASERS = [
    "شورای شهر بودجه سال آینده را پس از بحثی طولانی تصویب کرد",
    "مدرسه تازه محله شمالی از ماه آینده دانش‌آموز می‌پذیرد",
    "نمایشگاه کتاب امسال با حضور ناشران بیشتری برگزار می‌شود",
    "بیمارستان شهر بخش تازه‌ای برای کودکان افتتاح کرده است",
]


def test_teasers_named_like_content_are_not_parts_of_a_split_article() -> None:
    # Each teaser of another story is one short paragraph in a box named "content": its
    # class name alone makes it score nearly as well as the story. Before 2.8.0 three such
    # boxes made the story look split, and the box holding the story and the teasers won;
    # a part of a split article now holds a tenth of the best candidate's text.
    story = "".join(f"<p>{text}</p>" for text in STORY)
    teasers = "".join(
        f'<article class="teaser"><h3>خبر</h3><div class="content"><p>{text}</p></div></article>'
        for text in TEASERS
    )
    html = (
        "<!DOCTYPE html><html lang=fa dir=rtl><head><title>گزارش</title></head><body>"
        f'<div class="page"><div class="col-a"><div class="entry">{story}</div></div>'
        f'<div class="col-b"><div class="more">{teasers}</div></div></div></body></html>'
    )
    result = extract(html)
    assert result.method == "article"
    for text in STORY:
        assert text in result.text
    for text in TEASERS:
        assert text not in result.text


# --- extractor 2.8.0: hiding helpers named in camelCase ------------------------------------

POSTS = [
    "Ich habe das Gerät seit drei Wochen und der Akku hält bei täglicher Nutzung etwa zwei "
    "Tage, was deutlich besser ist als beim Vorgänger.",
    "Bei mir ist es ähnlich, allerdings wird das Gehäuse beim Laden recht warm, und das "
    "Ladegerät aus der Packung ist ziemlich langsam.",
    "Ein Update der Firmware hat bei mir das Problem mit der Wärme behoben, seitdem lädt es "
    "auch spürbar schneller als vorher.",
]
PANEL = (
    "Melden Sie sich an, um auf diesen Beitrag zu antworten, ihn zu melden oder "
    "Benachrichtigungen über neue Antworten zu erhalten."
)


def test_a_hiding_helper_named_in_camel_case_hides() -> None:
    # Each post carries a panel a style sheet hides until a button opens it, named with a
    # framework's prefix in camelCase (``uiHidden``, like ``ipsHide`` or ``isHidden``).
    # Before 2.8.0 only the whole words ``hide``/``hidden`` hid a box, and every post kept
    # the panel's text.
    posts = "".join(
        f'<article class="post"><p>{text}</p>'
        f'<div class="replyPanel uiHidden"><p>{PANEL}</p></div></article>'
        for text in POSTS
    )
    html = (
        "<!DOCTYPE html><html lang=de><head><title>Akku</title></head><body>"
        f"<main><h1>Akku</h1>{posts}</main></body></html>"
    )
    result = extract(html)
    for text in POSTS:
        assert text in result.text
    assert PANEL not in result.text
    # a toggle's wrapper (``showHide``) and ``noHide`` are not hiding helpers
    for cls, hidden in (("ipsHide", True), ("panel isHidden", True), ("showHide", False),
                        ("noHide", False), ("uiHidden md:block", False)):
        assert _hidden_by_class(cls) is hidden, cls


# --- extractor 2.8.0: a section laid out for phones is hidden on a desktop -----------------

PLANS = [
    "基本プランは月額九百八十円で、毎月三本までの記事を保存し、一年間いつでも読み返すことができます。",
    "標準プランは月額千九百八十円で、保存できる記事の数に上限がなく、検索と書き出しも使えます。",
    "団体プランは人数に応じた料金で、調査チームの全員が同じ保存庫を共有し、注釈を付けられます。",
]


def _plans(cls: str) -> str:
    return f'<div class="{cls}">' + "".join(f"<p>{text}</p>" for text in PLANS) + "</div>"


def test_a_section_laid_out_for_phones_is_hidden_as_a_desktop_browser_hides_it() -> None:
    # The page lays the same plans out twice: once for phones (shown below the md or lg
    # breakpoint: Tailwind "block md:hidden", Bootstrap "d-lg-none") and once for larger
    # screens. Before 2.8.0 both copies were read; a desktop browser shows one.
    for phone, desktop in (("block md:hidden", "hidden md:block"),
                           ("d-block d-lg-none", "d-none d-lg-block")):
        html = (
            "<!DOCTYPE html><html lang=ja><head><title>料金</title></head><body><main>"
            f"<h1>料金</h1>{_plans(phone)}{_plans(desktop)}</main></body></html>"
        )
        result = extract(html)
        for text in PLANS:
            assert result.text.count(text) == 1, (phone, text)
    for cls, hidden in (("lg:hidden lg:block", False), ("flex md:hidden lg:flex", False),
                        ("visible-xs", True), ("visible-xs visible-lg", False),
                        ("hidden-lg", True), ("2xl:hidden", False), ("col-lg-4", False)):
        assert _hidden_by_class(cls) is hidden, cls
