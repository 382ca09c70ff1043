from django.conf import settings


def lab(request):
    return {"profiling_tools": settings.PROFILING_TOOLS}
