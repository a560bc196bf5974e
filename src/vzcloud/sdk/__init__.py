"""The SDK: ``Cloud`` (sync) and ``AsyncCloud`` (async, trio or asyncio).

Layout: ``flows`` (the call flow as generators: retries, token refresh), ``fullview``
(a fullview streamed and parsed piece by piece), ``transfer``
(streaming uploads and downloads), ``methods`` (the seed's methods, declared once),
``cloud`` and ``async_cloud`` (the two drivers, which differ only in how they send).
Requests and responses are built and parsed by ``vzcloud.api.protocol``.
"""

from vzcloud.sdk.async_cloud import AsyncCloud
from vzcloud.sdk.cloud import Cloud
from vzcloud.sdk.flows import RetryPolicy
from vzcloud.sdk.transfer import CHUNK_THRESHOLD, DEFAULT_CHUNK_SIZE

__all__ = ["CHUNK_THRESHOLD", "DEFAULT_CHUNK_SIZE", "AsyncCloud", "Cloud", "RetryPolicy"]
