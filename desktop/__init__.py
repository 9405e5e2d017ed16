"""Hookline's desktop app (PySide6 on qasync); built on the engine's public API."""
