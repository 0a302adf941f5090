"""Kamailio (app_python3 KEMI) integration of the call-screening service."""
