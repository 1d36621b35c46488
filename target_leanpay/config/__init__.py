"""Settings: read once, checked, never printed with their secrets."""
