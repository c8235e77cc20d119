"""Helpers for pages only (never routed)."""
