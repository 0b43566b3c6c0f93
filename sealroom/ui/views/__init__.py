"""What each page shows, gathered from the workspace as typed models (no HTML): the pages
render them and their JSON endpoints return them as they are."""
