"""Allow-listed training components: optimizers, schedulers, losses, layers, architectures.

Each module fills a :class:`~sealroom.pipeline.registry.Registry` with decorators; a config
name reaches code only through these registries.
"""
