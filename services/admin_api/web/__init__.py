"""The Session Management page: `/admin`, its configuration and its static assets."""

from admin_api.web.config import AdminPageConfig
from admin_api.web.pages import router

__all__ = ["AdminPageConfig", "router"]
