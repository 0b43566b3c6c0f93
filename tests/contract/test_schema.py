"""Contract drafts are validated at the edge; errors name the file and the field path."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sealroom.contract import Contract, load_contract_file
from sealroom.crypto.identity import Party
from sealroom.errors import ContractError

TEMPLATE = Path(__file__).resolve().parents[2] / "docs" / "contract-template.yaml"
Draft = Callable[..., Path]
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def resolver(parties: dict[str, Party]) -> Callable[[str], tuple[str, str] | None]:
    def resolve(name: str) -> tuple[str, str] | None:
        party = parties.get(name)
        return (party.identity.signing_key, party.identity.encryption_key) if party else None

    return resolve


def test_template_loads_with_keys_from_the_workspace(parties: dict[str, Party]) -> None:
    contract = load_contract_file(TEMPLATE, resolver(parties), NOW)
    assert contract.id == "mnist-demo"
    assert contract.party("lab").signing_key == parties["lab"].identity.signing_key
    assert contract.not_before == NOW
    assert (contract.expires - contract.not_before).days == 30
    assert contract.dataset("mnist").privacy is not None


def test_json_and_yaml_drafts_give_the_same_contract(
    parties: dict[str, Party], draft: Draft
) -> None:
    from_yaml = load_contract_file(draft(".yaml"), resolver(parties), NOW)
    from_json = load_contract_file(draft(".json"), resolver(parties), NOW)
    assert from_yaml == from_json


def test_missing_party_keys_are_named(draft: Draft) -> None:
    with pytest.raises(
        ContractError, match=r"draft\.yaml: parties\.0\.signing_key: Field required"
    ):
        load_contract_file(draft(), None, NOW)


@pytest.mark.parametrize(
    ("override", "where"),
    [
        (
            {"datasets": [{"id": "mnist", "provider": "hospital", "package_digest": "md5:x"}]},
            r"datasets\.0\.package_digest",
        ),
        ({"consumer": "nobody"}, r"consumer 'nobody' is not one of the parties"),
        ({"consumer": "hospital"}, r"consumer 'hospital' has role 'provider'"),
        ({"id": "../escape"}, r"\bid: String should match pattern"),
        ({"surprise": 1}, r"surprise: Extra inputs are not permitted"),
        ({"expires": "2020-01-01T00:00:00Z"}, r"expires must be after not_before"),
        ({"not_before": "2026-01-01T00:00:00"}, r"not_before: Value error, needs a timezone"),
        ({"constraints": {"max_epochs": 0}}, r"constraints\.model_formats: Field required"),
        (
            {
                "datasets": [
                    {"id": "mnist", "provider": "hospital", "package_digest": "sha256:" + "0" * 64}
                ]
            },
            r"dataset 'mnist' has no privacy terms but require_privacy is set",
        ),
        ({"room": {"measurements": ["not-hex"]}}, r"room\.measurements: .*not hex"),
    ],
)
def test_invalid_drafts_name_the_field(
    parties: dict[str, Party], draft: Draft, override: dict[str, object], where: str
) -> None:
    path = draft(**override)
    with pytest.raises(ContractError, match=where) as caught:
        load_contract_file(path, resolver(parties), NOW)
    assert str(caught.value).startswith(str(path))
    assert "\n" not in str(caught.value)


def test_per_run_budget_cannot_exceed_the_total(parties: dict[str, Party], draft: Draft) -> None:
    privacy = {"per_run_epsilon": 5, "per_run_delta": 0, "total_epsilon": 1, "total_delta": 0}
    datasets = [
        {
            "id": "mnist",
            "provider": "hospital",
            "package_digest": "sha256:" + "0" * 64,
            "privacy": privacy,
        }
    ]
    with pytest.raises(ContractError, match=r"datasets\.0\.privacy: .*per_run_epsilon exceeds"):
        load_contract_file(draft(datasets=datasets), resolver(parties), NOW)


def test_unparseable_files_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: [unclosed\n")
    with pytest.raises(ContractError, match=r"bad\.yaml: not valid YAML"):
        load_contract_file(bad)
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    with pytest.raises(ContractError, match="mapping at the top level"):
        load_contract_file(listing)
    with pytest.raises(ContractError, match="cannot read"):
        load_contract_file(tmp_path / "absent.json")


def test_datetimes_are_normalised_to_utc(parties: dict[str, Party], draft: Draft) -> None:
    path = draft(not_before="2026-11-23T09:00:00+01:00", expires="2d")
    contract = load_contract_file(path, resolver(parties), NOW)
    assert contract.not_before == NOW
    assert contract.not_before.tzinfo == UTC
    assert contract.model_dump(mode="json")["expires"] == "2026-11-25T08:00:00Z"


def test_contract_round_trips_through_json(parties: dict[str, Party]) -> None:
    contract = load_contract_file(TEMPLATE, resolver(parties), NOW)
    assert Contract.model_validate_json(contract.model_dump_json()) == contract
