"""``vzcloud logout``: revoke a profile's tokens at its server and forget them.

The refresh token is revoked first (on this cloud that revokes every token issued from
the same sign-in, also ones a running mount rotated meanwhile), then the access token.
Only when the server has confirmed are the tokens removed from the profile, which keeps
its server and client so that 'vzcloud login --profile NAME' signs in again; --delete
removes the whole profile instead. When the server cannot be reached nothing changes
(the tokens would stay valid there); deleting the profile file forgets them anyway.
"""

from __future__ import annotations

import argparse
from typing import Any

from vzcloud import profiles
from vzcloud.cli import EXIT_AUTH, EXIT_FAILED, EXIT_OK, CliError, add_command
from vzcloud.cli._common import chosen_profile, describe, load_profile, out, profile_option


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "logout", run, help="sign out: revoke and forget the tokens",
                    description=__doc__, parents=[profile_option()])
    p.add_argument("--delete", action="store_true",
                   help="delete the whole profile, not just its tokens")


def revoke(profile: profiles.Profile, token: str) -> None:
    """Revoke ``token`` at the profile's server (RFC 7009), authenticated as its client."""
    import httpx

    from vzcloud.api import errors as E
    from vzcloud.api.protocol import build_request, parse_response
    from vzcloud.sdk.http import DEFAULT_TIMEOUT, to_response

    request = build_request("revoke", {"token": token, "client_id": profile.client_id,
                                       "client_secret": profile.client_secret}, profile.server)
    assert isinstance(request.content, bytes)  # a form body
    try:
        with httpx.Client(timeout=DEFAULT_TIMEOUT) as http:
            resp = http.request(request.method, request.url, headers=request.headers,
                                content=request.content)
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach {profile.server} to revoke the tokens ({type(exc).__name__}"
                       f": {exc}); nothing was changed: check the connection and retry, or "
                       "delete the profile file to forget the tokens without revoking them",
                       EXIT_FAILED) from exc
    try:
        parse_response("revoke", to_response(resp, resp.content))
    except E.UnauthorizedError as exc:
        raise CliError(f"{profile.server} does not accept the profile's client "
                       f"({describe(exc)}), so it cannot revoke the tokens; "
                       "delete the profile file to forget them", EXIT_AUTH) from exc
    except E.CloudError as exc:
        raise CliError(f"{profile.server} failed to revoke the tokens ({describe(exc)}); nothing "
                       "was changed: try again later", EXIT_FAILED) from exc


def run(args: argparse.Namespace) -> int:
    name = chosen_profile(args)
    profile = load_profile(name)
    had_tokens = bool(profile.refresh_token or profile.access_token)
    for token in (profile.refresh_token, profile.access_token):
        if token:
            revoke(profile, token)
    with profiles.locked(name):
        if args.delete:
            profiles.delete(name)
        else:
            current = profiles.load(name)
            current.access_token = current.refresh_token = None
            current.expires_at = None
            path = profiles.save(current)
    revoked = (f"revoked the tokens at {profile.server}" if had_tokens
               else "profile had no tokens (already signed out)")
    if args.delete:
        out(f"signed out: {revoked} and deleted profile {name!r}")
    else:
        out(f"signed out: {revoked} and removed them from profile {name!r} ({path}); "
            f"'vzcloud login --profile {name}' signs in again")
    return EXIT_OK
