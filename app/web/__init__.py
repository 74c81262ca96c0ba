"""The browser page at `/`: static files only, served by the app itself, nothing fetched from elsewhere."""
