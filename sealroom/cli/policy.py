"""`sealroom policy check`: would this pipeline be allowed under this contract?"""

from __future__ import annotations

from pathlib import Path

import typer

from sealroom.cli.console import JSON_OPTION, console, emit_json, refusals

app = typer.Typer(
    help="Policy as code (Rego): check pipelines against contracts.", no_args_is_help=True
)


@app.command()
def check(
    contract_id: str = typer.Option(..., "--contract", help="Contract id in this workspace."),
    pipeline_file: Path = typer.Option(..., "--pipeline", help="Composed pipeline (JSON/YAML)."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Evaluate the contract policy (and the contract's own Rego rules) on a pipeline.

    Prints allow, or deny with every violated rule; exits 1 on deny.

    Example: sealroom policy check --contract mnist-demo --pipeline pipeline.json
    """
    from sealroom.contract.store import load_contract
    from sealroom.pipeline.compose import load_pipeline, pipeline_digest
    from sealroom.policy.pipeline_check import check_pipeline
    from sealroom.workspace import Workspace

    with refusals():
        ws = Workspace.find()
        contract = load_contract(ws, contract_id).contract
        pipeline = load_pipeline(pipeline_file)
        decision = check_pipeline(contract, pipeline)
    if json_out:
        emit_json(
            {
                "contract": contract_id,
                "pipeline_digest": pipeline_digest(pipeline),
                "allow": decision.allow,
                "violations": decision.violations,
            }
        )
    elif decision.allow:
        console.print(
            f"[bold green]allow[/]: pipeline {pipeline.name} meets contract {contract_id}"
        )
    else:
        console.print(f"[bold red]deny[/]: pipeline {pipeline.name} breaks contract {contract_id}:")
        for violation in decision.violations:
            console.print(f"  - {violation}", highlight=False)
    if not decision.allow:
        raise typer.Exit(1)
