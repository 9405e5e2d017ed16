"""The main window's screens, one module each."""
