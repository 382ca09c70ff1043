from django.urls import path

from lab import views

app_name = "lab"

urlpatterns = [
    path("", views.catalogue, name="catalogue"),
    path("api/lessons/", views.lessons_api, name="lessons-api"),
    path("lessons/<slug:slug>/", views.lesson_page, name="lesson"),
    # Before the variant pattern, which would otherwise read "compare" as a variant name.
    path("lessons/<slug:slug>/compare/", views.lesson_compare, name="compare"),
    path("lessons/<slug:slug>/<slug:variant>/", views.variant_view, name="variant"),
    path("lessons/<slug:slug>/<slug:variant>/silk/", views.variant_silk, name="variant-silk"),
]
