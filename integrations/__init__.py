"""Hookline's built-in services: one module each, importing only ``engine``'s public API."""
