"""REST prediction service (the original project's Gunicorn service, kept)."""
