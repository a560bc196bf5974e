"""vzcloud: SDK, embedded cloud and FUSE mount for Personal Cloud Storage.

``from vzcloud import Cloud`` gives the Python SDK v1.5 class (``AsyncCloud`` is its
async twin); the seed's result objects and errors are importable from here too.
"""

from vzcloud.api.errors import (
    CloudError,
    ConflictError,
    NotFoundError,
    OutOfSyncError,
    UnauthorizedError,
)
from vzcloud.api.models import (
    Account,
    CloudFile,
    CloudFolder,
    Contact,
    FolderListing,
    FullviewResult,
    Playlist,
    PlaylistAdd,
    PlaylistItem,
    Share,
    ShareRequest,
    SharesCursor,
    SharesResult,
    Token,
)
from vzcloud.sdk import AsyncCloud, Cloud, RetryPolicy

__all__ = [
    "Account",
    "AsyncCloud",
    "Cloud",
    "CloudError",
    "CloudFile",
    "CloudFolder",
    "ConflictError",
    "Contact",
    "FolderListing",
    "FullviewResult",
    "NotFoundError",
    "OutOfSyncError",
    "Playlist",
    "PlaylistAdd",
    "PlaylistItem",
    "RetryPolicy",
    "Share",
    "ShareRequest",
    "SharesCursor",
    "SharesResult",
    "Token",
    "UnauthorizedError",
]
