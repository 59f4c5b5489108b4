"""dashboards layer."""
