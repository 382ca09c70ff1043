"""The articles JSON API: list (paginated, ?tag=), detail, and create for authors.

It uses the lessons' optimized querysets: 3 queries per list page, 2 per detail.
"""

from __future__ import annotations

from django.core.paginator import EmptyPage, Paginator
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.generics import get_object_or_404
from rest_framework.permissions import IsAuthenticatedOrReadOnly
from rest_framework.response import Response
from rest_framework.views import APIView

from articles.lessons.article_list_template import article_list_optimized
from articles.models import Author, Tag
from articles.serializers import (
    ArticleDetailSerializer,
    ArticleListQuery,
    ArticleListSerializer,
    ArticleWriteSerializer,
)
from lab.api import reject_unknown_fields, validated_query

ARTICLE_PAGE = extend_schema(
    operation_id="articles_api_articles_list",
    parameters=[ArticleListQuery],
    responses=inline_serializer(
        "ArticlePage",
        fields={
            "count": serializers.IntegerField(),
            "page": serializers.IntegerField(),
            "pages": serializers.IntegerField(),
            "results": ArticleListSerializer(many=True),
        },
    ),
)


class ArticleListView(APIView):
    permission_classes = [IsAuthenticatedOrReadOnly]

    @ARTICLE_PAGE
    def get(self, request):
        query = validated_query(request, ArticleListQuery)
        articles = article_list_optimized()
        if "tag" in query:
            articles = articles.filter(tags=get_object_or_404(Tag, slug=query["tag"]))
        paginator = Paginator(articles, query["page_size"])
        try:
            page = paginator.page(query["page"])
        except EmptyPage:
            raise NotFound(f"Page {query['page']} is past the last page.") from None
        return Response(
            {
                "count": paginator.count,
                "page": page.number,
                "pages": paginator.num_pages,
                "results": ArticleListSerializer(page.object_list, many=True).data,
            }
        )

    @extend_schema(request=ArticleWriteSerializer, responses={201: ArticleDetailSerializer})
    def post(self, request):
        author = Author.objects.filter(user=request.user).first()
        if author is None:
            raise PermissionDenied("Only authors can write articles.")
        serializer = ArticleWriteSerializer(data=request.data, context={"author": author})
        reject_unknown_fields(serializer)
        serializer.is_valid(raise_exception=True)
        article = serializer.save()
        fresh = article_list_optimized().model.objects.select_related("author")
        data = ArticleDetailSerializer(fresh.prefetch_related("tags").get(pk=article.pk)).data
        return Response(data, status=status.HTTP_201_CREATED)


class ArticleDetailView(APIView):
    @extend_schema(responses=ArticleDetailSerializer)
    def get(self, request, slug: str):
        # The list's query, with the body the detail shows (the list defers it).
        articles = article_list_optimized().defer(None)
        return Response(ArticleDetailSerializer(get_object_or_404(articles, slug=slug)).data)
