"""Core: app-wide settings, the clock and UK time, shared by every layer."""
