import pytest

from articles.models import Article
from articles.sample import make_articles, make_authors, make_tags


@pytest.fixture
def blog(db):
    """10 published articles by 5 authors with 2 of 4 tags each, and 3 drafts."""
    authors = make_authors(5)
    tags = make_tags(4)
    published = make_articles(10, authors=authors, tags=tags)
    drafts = make_articles(3, authors=authors, tags=tags, status=Article.Status.DRAFT)
    return {"authors": authors, "tags": tags, "published": published, "drafts": drafts}


@pytest.fixture
def signed_in(client, blog):
    """A client signed in as the first author's user."""
    user = blog["authors"][0].user
    client.force_login(user)
    return client, user
