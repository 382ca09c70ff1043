"""Public blog pages and the JSON API: bad input is 4xx, text is escaped, queries bounded."""

import pytest

from articles.models import Article, Author, Tag

pytestmark = pytest.mark.django_db
XSS = '<script>alert("x")</script>'


@pytest.mark.parametrize(
    ("url", "query", "status"),
    [
        ("/articles/", {"page": "abc"}, 400),
        ("/articles/", {"page": "1.5"}, 400),
        ("/articles/", {"page": "0"}, 404),
        ("/articles/", {"page": "-3"}, 404),
        ("/articles/", {"page": "99999"}, 404),
        ("/articles/", {"page": str(10**30)}, 404),
        ("/articles/", {"tag": "no-such-tag"}, 404),
        ("/articles/", {"tag": XSS}, 400),
        ("/articles/no-such-article/", {}, 404),
        ("/articles/tags/no-such-tag/", {}, 404),
        ("/articles/tags/stats/", {}, 200),
        ("/articles/api/articles/", {"page": "abc"}, 400),
        ("/articles/api/articles/", {"page": "99999"}, 404),
        ("/articles/api/articles/", {"page_size": "1000"}, 400),
        ("/articles/api/articles/", {"tag": XSS}, 400),
        ("/articles/api/articles/", {"tag": "no-such-tag"}, 404),
        ("/articles/api/articles/", {"sort": "title"}, 400),
        ("/articles/api/articles/no-such-article/", {}, 404),
    ],
)
def test_bad_input_is_4xx_never_500(client, blog, url, query, status):
    assert client.get(url, query).status_code == status


def test_api_errors_are_json(client, blog):
    body = client.get("/articles/api/articles/", {"page_size": "0"}).json()
    assert body["status"] == 400
    assert "page_size" in body["errors"]


def test_draft_is_not_public(client, blog):
    assert client.get(f"/articles/{blog['drafts'][0].slug}/").status_code == 404


def test_pages_render_and_link_with_querystring(client, blog):
    tag = blog["tags"][0]
    page = client.get("/articles/", {"tag": tag.slug}).content.decode()
    assert f'href="{tag.get_absolute_url()}"' in page
    assert "Top tags" in page
    for url in ("/articles/", f"/articles/{blog['published'][0].slug}/", tag.get_absolute_url()):
        assert client.get(url).status_code == 200


def test_pagination_links_keep_the_tag_filter(client, blog):
    from articles.sample import make_articles

    make_articles(45, authors=blog["authors"], tags=blog["tags"])
    tag = blog["tags"][0]
    page = client.get("/articles/", {"tag": tag.slug}).content.decode()
    assert f'href="?tag={tag.slug}&amp;page=2"' in page


@pytest.fixture
def hostile(blog):
    tag = Tag.objects.create(name=XSS, slug="hostile")
    article = blog["published"][0]
    article.title = f"Title {XSS}"
    article.body = f"Body {XSS}"
    article.save()
    article.tags.add(tag)
    return article


def test_article_text_and_tag_names_are_escaped(client, hostile):
    urls = [
        "/articles/",
        f"/articles/{hostile.slug}/",
        "/articles/tags/hostile/",
        "/articles/tags/stats/",
        "/lessons/article-list-template/naive/",
        "/lessons/top-tags-fragment/optimized/",
    ]
    for url in urls:
        page = client.get(url).content.decode()
        assert XSS not in page, url
        assert "&lt;script&gt;" in page, url


def test_api_list_and_detail(client, blog, django_assert_num_queries):
    with django_assert_num_queries(3):
        # 1. SELECT COUNT(*)  2. SELECT page JOIN authors  3. SELECT tags of the page
        listing = client.get("/articles/api/articles/", {"page_size": 5}).json()
    assert listing["count"] == 10
    assert listing["pages"] == 2
    first = listing["results"][0]
    assert first["author"].startswith("Writer")
    assert first["tag_count"] == len(first["tags"]) == 2
    with django_assert_num_queries(2):
        # 1. SELECT article JOIN author WHERE slug = %s   2. SELECT its tags
        detail = client.get(f"/articles/api/articles/{first['slug']}/").json()
    assert detail["body"].startswith("Body of article")


def test_api_create_needs_an_author(client, blog):
    payload = {"title": "T", "body": "B", "status": "published", "tags": ["x"]}
    assert client.post("/articles/api/articles/", payload).status_code == 403
    from django.contrib.auth import get_user_model

    stranger = get_user_model().objects.create_user("stranger", password="pw-stranger")
    client.force_login(stranger)
    assert client.post("/articles/api/articles/", payload).status_code == 403


def test_api_input_is_stored_as_text_and_escaped_in_html(client, blog):
    author: Author = blog["authors"][0]
    client.force_login(author.user)
    before = client.get("/articles/tags/stats/").content  # warms the tag statistics
    payload = {"title": XSS, "body": XSS, "status": "published", "tags": [XSS, "Plain"]}
    response = client.post("/articles/api/articles/", payload, content_type="application/json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["title"] == XSS  # JSON carries the text as given
    assert created["tag_count"] == 2
    client.logout()
    for url in ("/articles/", created["url"], "/articles/tags/scriptalertxscript/"):
        page = client.get(url).content.decode()
        assert XSS not in page, url
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page, url
    assert client.get("/articles/tags/stats/").content != before  # invalidated by the create
    assert Article.objects.get(slug=created["slug"]).tags.count() == 2


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"title": "", "body": "b"},
        {"title": "t", "body": "b", "status": "archived"},
        {"title": "t", "body": "b", "tags": ["<>"]},
        {"title": "t", "body": "b", "tags": ["t"] * 11},
        {"title": "t" * 201, "body": "b"},
    ],
)
def test_api_create_bad_input_is_json_400(client, blog, payload):
    client.force_login(blog["authors"][0].user)
    response = client.post("/articles/api/articles/", payload, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["status"] == 400


def test_lesson_page_links_carry_the_example_parameters(client, blog):
    page = client.get("/lessons/tag-summary/").content.decode()
    assert 'href="/lessons/tag-summary/optimized/?tag=qa"' in page
