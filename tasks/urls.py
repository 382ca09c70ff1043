from django.contrib.auth import views as auth_views
from django.urls import path

from tasks import views

app_name = "tasks"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="tasks:login"), name="logout"),
    path("api/organizations/", views.OrganizationListView.as_view(), name="organizations"),
    path("api/tasks/", views.TaskListView.as_view(), name="tasks"),
    path("api/tasks/<int:pk>/", views.TaskDetailView.as_view(), name="task-detail"),
    path("api/reports/<int:pk>/", views.ReportJobView.as_view(), name="report"),
    path(
        "api/reports/<int:pk>/download/",
        views.ReportDownloadView.as_view(),
        name="report-download",
    ),
]
