from django.urls import path

from lab import views

app_name = "lab"

urlpatterns = [
    path("", views.catalogue, name="catalogue"),
    path("api/lessons/", views.lessons_api, name="lessons-api"),
    path("lessons/<slug:slug>/", views.lesson_page, name="lesson"),
    path("lessons/<slug:slug>/<slug:variant>/", views.variant_view, name="variant"),
]
