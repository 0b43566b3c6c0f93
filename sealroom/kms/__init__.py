"""The key service: data keys under release policies, released only to attested rooms."""

from sealroom.kms.client import KmsClient, KmsUnavailable
from sealroom.kms.fetch import fetch_data_key
from sealroom.kms.models import (
    KeyRecord,
    ModelReleaseRequest,
    ReleasePolicy,
    ReleaseRequest,
    release_info,
)
from sealroom.kms.service import KeyImportError, KeyService, KeyServiceAPI, ReleaseGuard

__all__ = [
    "KeyImportError",
    "KeyRecord",
    "KeyService",
    "KeyServiceAPI",
    "KmsClient",
    "KmsUnavailable",
    "ModelReleaseRequest",
    "ReleaseGuard",
    "ReleasePolicy",
    "ReleaseRequest",
    "fetch_data_key",
    "release_info",
]
