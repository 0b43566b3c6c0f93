"""Training: models, loop, metrics, export and the components configs name."""
