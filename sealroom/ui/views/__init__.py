"""What each page shows, gathered from the workspace as typed models (no HTML here)."""
