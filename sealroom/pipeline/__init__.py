"""Pipeline configs: schemas, allow-listed registries and composition."""
