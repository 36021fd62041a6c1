"""Sunbid trading platform (公共资源交易平台): the Flask application and its domains."""

from bidding.app import create_app

__all__ = ["create_app"]
