"""What each page shows, gathered from the workspace as typed models (no HTML here): the
page renders them and its ``/api/...`` route returns them as JSON."""
