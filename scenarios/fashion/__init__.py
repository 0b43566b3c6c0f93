"""Fashion-MNIST scenario code (the dp-fashion story's prepare and model steps)."""
