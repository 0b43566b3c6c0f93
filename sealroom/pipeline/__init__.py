"""Pipeline configs: schemas, allow-listed registries and composition.

Public entry points: :func:`compose` (a folder of config parts -> :class:`Pipeline`),
:func:`load_pipeline` (a composed document), :func:`pipeline_digest` (what contracts
and key releases bind to) and :func:`parse_expression` (loss expressions).
"""

from sealroom.pipeline.compose import compose, load_part, load_pipeline, pipeline_digest
from sealroom.pipeline.expression import CompiledExpression, ExpressionError, parse_expression
from sealroom.pipeline.schema import Pipeline

__all__ = [
    "CompiledExpression",
    "ExpressionError",
    "Pipeline",
    "compose",
    "load_part",
    "load_pipeline",
    "parse_expression",
    "pipeline_digest",
]
